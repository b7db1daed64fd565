// The web UI against the real binary with no LLM configured: the no-LLM banner, creating
// a conversation, sending messages (Enter / Shift+Enter), the terminal, Stop, the files
// panel, rename and delete, a settings round trip, and the narrow layout.

import assert from "node:assert/strict";
import fs from "node:fs";
import { after, before, test } from "node:test";
import {
  allEvents,
  api,
  conversationIdFromUrl,
  eventually,
  launchBrowser,
  renderedIds,
  screenshot,
  startServer,
  watchPage,
} from "./harness.mjs";

let srv;
let browser;
let page;
let pageErrors;
let cid;

before(async () => {
  srv = await startServer();
  browser = await launchBrowser();
  page = await browser.context.newPage();
  pageErrors = watchPage(page);
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

const connected = () => page.waitForSelector("[data-testid=connection-state][data-state=connected]");

test("home shows the no-LLM banner with what to do", async () => {
  await page.goto(`${srv.url}/`);
  const banner = page.locator("[data-testid=no-llm-banner]");
  await banner.waitFor();
  const text = await banner.innerText();
  assert.match(text, /No LLM is configured/);
  assert.match(text, /Settings/);
  for (const v of ["LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL"]) assert.ok(text.includes(v), `banner names ${v}`);
  await page.waitForSelector("[data-testid=conversation-list]");
  await screenshot(page, "home");
});

test("a new conversation with a first message; the agent's error says how to configure an LLM", async () => {
  await page.fill("[data-testid=new-message]", "Hello from the browser test");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/conversations\/[0-9a-f]+$/);
  cid = conversationIdFromUrl(page.url());
  await connected();
  await page.waitForSelector("[data-testid=msg-user]:has-text('Hello from the browser test')");
  // It is in the list, with its title (from the first message), status and last update.
  const row = page.locator(`[data-conversation-id="${cid}"]`);
  await row.waitFor();
  await eventually(async () => /Hello from the browser test/.test(await row.innerText()), { label: "title in the list" });
  assert.match(await row.locator("[data-testid=conversation-status]").innerText(), /running|starting|stopped/);
  assert.match(await row.locator("time").innerText(), /just now|min ago/);
  assert.match(await page.locator("[data-testid=conversation-heading]").innerText(), /Hello from the browser test/);
  // Without an LLM the agent ends in error with a reason that says what to do.
  await page.waitForSelector("[data-testid=agent-state][data-state=error]", { timeout: 15_000 });
  assert.match(await page.locator("[data-testid=agent-error]").innerText(), /LLM/);
});

test("Enter sends, Shift+Enter makes a new line", async () => {
  const box = page.locator("[data-testid=composer]");
  await box.click();
  await page.keyboard.type("first line");
  await page.keyboard.press("Shift+Enter");
  await page.keyboard.type("second line");
  assert.equal(await box.inputValue(), "first line\nsecond line");
  await page.keyboard.press("Enter");
  await eventually(async () => (await box.inputValue()) === "", { label: "composer cleared" });
  await eventually(
    async () =>
      (await allEvents(srv.url, cid)).some((e) => e.action === "message" && e.args.content === "first line\nsecond line"),
    { label: "two-line message stored" },
  );
  await page.waitForSelector("[data-testid=msg-user]:has-text('second line')");
  await screenshot(page, "conversation");
});

test("the terminal runs a person's command and shows its output and exit code", async () => {
  const input = page.locator("[data-testid=terminal-input]");
  await input.fill("echo hello-from-terminal; ls -a; false");
  await input.press("Enter");
  const entry = page.locator("[data-testid=terminal-entry]", { hasText: "hello-from-terminal" }).last();
  await entry.waitFor();
  await eventually(async () => /\[exit code 1\]/.test(await entry.innerText()), { label: "exit code shown" });
  assert.match(await entry.innerText(), /YOU\s*\$ echo hello-from-terminal/i);
  const events = await allEvents(srv.url, cid);
  const run = events.find((e) => e.action === "run" && e.args.command.startsWith("echo hello-from-terminal"));
  assert.equal(run.source, "user");
  const obs = events.find((e) => e.observation === "run" && e.cause === run.id);
  assert.match(obs.content, /hello-from-terminal/);
  await screenshot(page, "terminal");
});

test("Stop interrupts a running command", async () => {
  const input = page.locator("[data-testid=terminal-input]");
  await input.fill("sleep 45");
  await input.press("Enter");
  await page.waitForSelector(".t-running");
  await page.click("[data-testid=stop]");
  await page.waitForSelector(".t-running", { state: "detached", timeout: 15_000 });
  const events = await allEvents(srv.url, cid);
  assert.ok(events.some((e) => e.action === "change_agent_state" && e.args.agent_state === "stopped"));
  const run = events.findLast((e) => e.action === "run" && e.args.command === "sleep 45");
  const obs = events.find((e) => e.cause === run.id);
  assert.ok(obs, "the interrupted command has an observation");
  assert.notEqual(obs.extras?.metadata?.exit_code, 0);
});

test("files panel: upload, tree, highlighted view, zip download", async () => {
  await page.click("[data-testid=side-files]");
  await page.waitForSelector("[data-testid=file-tree]");
  await page.setInputFiles("[data-testid=upload-input]", [
    { name: "greet.py", mimeType: "text/x-python", buffer: Buffer.from("def greet(name):\n    return f'hi {name}'\n") },
    { name: "notes.md", mimeType: "text/markdown", buffer: Buffer.from("# Notes\n\n- one\n") },
  ]);
  await page.waitForSelector(".f-msg.ok:has-text('Uploaded 2 files')");
  const py = page.locator("[data-testid=file-item][data-path='greet.py']");
  await py.waitFor();
  await py.click();
  await page.waitForSelector("[data-testid=file-content] .hljs-keyword");
  assert.match(await page.locator("[data-testid=file-content]").innerText(), /def greet\(name\)/);
  await screenshot(page, "files");
  await page.click("[data-testid=back-to-files]");
  // A folder made in the terminal shows up (and opens) in the tree.
  await page.click("[data-testid=side-terminal]");
  await page.locator("[data-testid=terminal-input]").fill("mkdir -p src && echo 'fn main() {}' > src/main.rs");
  await page.locator("[data-testid=terminal-input]").press("Enter");
  await page.waitForSelector("[data-testid=terminal-entry]:has-text('mkdir -p src')");
  await page.click("[data-testid=side-files]");
  await page.locator("[data-testid=file-item][data-path='src/']").click();
  await page.locator("[data-testid=file-item][data-path='src/main.rs']").waitFor();
  // The workspace as a zip.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("[data-testid=download-zip]")]);
  const file = await download.path();
  const head = fs.readFileSync(file).subarray(0, 2).toString("latin1");
  assert.equal(head, "PK");
  await page.click("[data-testid=side-terminal]");
});

test("every stored event is rendered exactly once", async () => {
  const events = await allEvents(srv.url, cid);
  const ids = await renderedIds(page);
  assert.equal(new Set(ids).size, ids.length, "no duplicates");
  assert.deepEqual([...ids].sort((a, b) => a - b), events.map((e) => e.id));
});

test("rename and delete from the list", async () => {
  // A second conversation, started without a message.
  await page.click("[data-testid=new-conversation]");
  await page.click("[data-testid=start-empty]");
  await page.waitForURL((u) => conversationIdFromUrl(u.toString()) && conversationIdFromUrl(u.toString()) !== cid);
  const other = conversationIdFromUrl(page.url());
  await connected();

  const row = page.locator(`[data-conversation-id="${other}"]`);
  await row.hover();
  await row.locator("[data-testid=rename]").click();
  await row.locator("[data-testid=rename-input]").fill("Renamed by the test");
  await row.locator("[data-testid=rename-input]").press("Enter");
  await eventually(async () => (await row.innerText()).includes("Renamed by the test"), { label: "renamed row" });
  // The open conversation's header follows (the server pushes the new title).
  await page.waitForSelector("[data-testid=conversation-heading]:has-text('Renamed by the test')");
  assert.equal((await api(srv.url, "GET", `/api/conversations/${other}`)).data.title, "Renamed by the test");

  await row.hover();
  await row.locator("[data-testid=delete]").click();
  await row.locator("[data-testid=confirm-delete]").click();
  await row.waitFor({ state: "detached" });
  await page.waitForSelector("[data-testid=home]");
  assert.equal((await api(srv.url, "GET", `/api/conversations/${other}`)).status, 404);
  // The first one is still there.
  await page.locator(`[data-conversation-id="${cid}"]`).waitFor();
});

test("settings round trip; the API key is never shown back; the banner goes away", async () => {
  await page.click("[data-testid=open-settings]");
  const dlg = page.locator("[data-testid=settings-dialog]");
  await dlg.waitFor();
  await dlg.locator("[data-testid=settings-model]").fill("openai/gpt-4o-mini");
  await dlg.locator("[data-testid=settings-base-url]").fill("http://127.0.0.1:9/v1");
  await dlg.locator("[data-testid=settings-api-key]").fill("sk-secret-e2e");
  await dlg.locator("[data-testid=settings-max-iterations]").fill("42");
  await dlg.locator("[data-testid=settings-confirmation]").check();
  await screenshot(page, "settings");
  await dlg.locator("[data-testid=settings-save]").click();
  await dlg.locator("[data-testid=settings-saved]").waitFor();

  const s = (await api(srv.url, "GET", "/api/settings")).data;
  assert.equal(s.llm_model, "openai/gpt-4o-mini");
  assert.equal(s.llm_base_url, "http://127.0.0.1:9/v1");
  assert.equal(s.max_iterations, 42);
  assert.equal(s.confirmation_mode, true);
  assert.equal(s.llm_api_key, null);
  assert.equal(s.llm_api_key_set, true);
  // The form reloads from the server: the key field is empty, the status says a key is stored.
  assert.equal(await dlg.locator("[data-testid=settings-api-key]").inputValue(), "");
  assert.match(await dlg.locator("[data-testid=api-key-status]").innerText(), /A key is stored/);
  assert.ok(!(await page.content()).includes("sk-secret-e2e"), "the key is nowhere in the page");

  // Saving again without typing a key keeps it.
  await dlg.locator("[data-testid=settings-max-iterations]").fill("50");
  await dlg.locator("[data-testid=settings-save]").click();
  await eventually(async () => (await api(srv.url, "GET", "/api/settings")).data.max_iterations === 50, { label: "saved 50" });
  assert.equal((await api(srv.url, "GET", "/api/settings")).data.llm_api_key_set, true);

  await page.keyboard.press("Escape");
  await dlg.waitFor({ state: "detached" });
  await page.waitForSelector("[data-testid=no-llm-banner]", { state: "detached" });
  // Reopening shows the stored values.
  await page.click("[data-testid=open-settings]");
  assert.equal(await dlg.locator("[data-testid=settings-model]").inputValue(), "openai/gpt-4o-mini");
  assert.equal(await dlg.locator("[data-testid=settings-max-iterations]").inputValue(), "50");
  assert.equal(await dlg.locator("[data-testid=settings-confirmation]").isChecked(), true);
  await page.keyboard.press("Escape");
  // Back to no model: the banner returns.
  await api(srv.url, "POST", "/api/settings", { llm_model: null, confirmation_mode: false });
  await page.reload();
  await page.waitForSelector("[data-testid=no-llm-banner]");
});

test("narrow screens: tabs for chat, terminal and files; the list in a drawer", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${srv.url}/conversations/${cid}`);
  await connected();
  await page.waitForSelector("[data-testid=tab-chat]");
  assert.ok(await page.locator("[data-testid=chat]").isVisible());
  assert.ok(!(await page.locator("[data-testid=terminal]").isVisible()));
  // No horizontal overflow.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  await screenshot(page, "narrow-chat");
  await page.click("[data-testid=tab-terminal]");
  assert.ok(await page.locator("[data-testid=terminal]").isVisible());
  assert.ok(!(await page.locator("[data-testid=chat]").isVisible()));
  await screenshot(page, "narrow-terminal");
  await page.click("[data-testid=tab-files]");
  await page.waitForSelector("[data-testid=file-tree]");
  await page.click("[data-testid=open-drawer]");
  await page.locator(`[data-conversation-id="${cid}"]`).waitFor({ state: "visible" });
  await page.waitForTimeout(400); // the slide-in transition
  await screenshot(page, "narrow-drawer");
  await page.setViewportSize({ width: 1400, height: 900 });
  assert.deepEqual(pageErrors, []);
});
