// The Changes tab (git status and per-file diff of the conversation's workspace) and
// attachments in the chat composer, against the real binary with no LLM configured.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { allEvents, api, eventually, launchBrowser, screenshot, startServer, watchPage } from "./harness.mjs";

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
  const created = await api(srv.url, "POST", "/api/conversations", { initial_user_msg: null });
  assert.equal(created.status, 200, JSON.stringify(created.data));
  cid = created.data.conversation_id;
  await page.goto(`${srv.url}/conversations/${cid}`);
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

test("Changes tab: not a git repository, then a new file as A with its diff", async () => {
  await page.click("[data-testid=side-changes]");
  await page.waitForSelector("[data-testid=not-git]:has-text('Not a git repository')");
  await screenshot(page, "changes-not-git");

  await page.click("[data-testid=side-terminal]");
  const input = page.locator("[data-testid=terminal-input]");
  await input.fill(
    "git init -q && git -c user.email=a@b -c user.name=n commit -q --allow-empty -m init && echo hi > a.txt && git add a.txt",
  );
  await input.press("Enter");
  const entry = page.locator("[data-testid=terminal-entry]", { hasText: "git init -q" }).last();
  await entry.waitFor();
  await eventually(async () => /\[exit code 0\]|exit 0/.test(await entry.innerText()) || !(await page.locator(".t-running").count()), {
    label: "git commands finished",
    timeout: 15_000,
  });

  await page.click("[data-testid=side-changes]");
  const item = page.locator("[data-testid=change-item][data-path='a.txt']");
  await item.waitFor();
  assert.equal(await item.getAttribute("data-status"), "A");
  assert.match(await item.innerText(), /A\s*a\.txt/);
  await screenshot(page, "changes-list");

  await item.click();
  const diff = page.locator("[data-testid=change-diff] [data-testid=diff]");
  await diff.waitFor();
  assert.equal(await diff.locator(".d-add").count(), 1);
  assert.equal((await diff.locator(".d-add").innerText()).trim(), "+hi");
  assert.match(await diff.innerText(), /@@ -0,0 \+1,1 @@/);
  await screenshot(page, "changes-diff");

  // An edit from the terminal refreshes the open diff by itself.
  await page.click("[data-testid=side-terminal]");
  await input.fill("echo there >> a.txt");
  await input.press("Enter");
  await page.locator("[data-testid=terminal-entry]", { hasText: "echo there" }).waitFor();
  await page.click("[data-testid=side-changes]");
  await page.click("[data-testid=change-item][data-path='a.txt']");
  await eventually(async () => (await page.locator("[data-testid=change-diff] .d-add").count()) === 2, { label: "diff shows the new line" });
  await page.click("[data-testid=back-to-changes]");
  // The Refresh button reloads the list.
  await page.click("[data-testid=changes-refresh]");
  await page.locator("[data-testid=change-item][data-path='a.txt']").waitFor();
});

test("attachments: a text file is uploaded and named in the message's file_urls", async () => {
  await page.setInputFiles("[data-testid=composer-attach-input]", [
    { name: "note.txt", mimeType: "text/plain", buffer: Buffer.from("attached content\n") },
  ]);
  const chip = page.locator("[data-testid=attachment-chip][data-name='note.txt']");
  await chip.waitFor();
  // A second one, removed again with its ×.
  await page.setInputFiles("[data-testid=composer-attach-input]", [
    { name: "drop-me.txt", mimeType: "text/plain", buffer: Buffer.from("no\n") },
  ]);
  const other = page.locator("[data-testid=attachment-chip][data-name='drop-me.txt']");
  await other.waitFor();
  await other.locator("[data-testid=attachment-remove]").click();
  await other.waitFor({ state: "detached" });
  // An image over 5 MB is refused with a clear message.
  await page.setInputFiles("[data-testid=composer-attach-input]", [
    { name: "huge.png", mimeType: "image/png", buffer: Buffer.alloc(5 * 1024 * 1024 + 1) },
  ]);
  assert.match(await page.locator("[data-testid=attach-error]").innerText(), /huge\.png is too large.*at most 5 MB/);
  assert.equal(await page.locator("[data-testid=attachment-chip]").count(), 1);

  await page.fill("[data-testid=composer]", "Please read the attached note");
  await screenshot(page, "attachments-pending");
  await page.click("[data-testid=composer-send]");
  await chip.waitFor({ state: "detached" });

  const msg = await eventually(
    async () =>
      (await allEvents(srv.url, cid)).find(
        (e) => e.action === "message" && e.source === "user" && String(e.args.content).startsWith("Please read the attached note"),
      ),
    { label: "stored user message" },
  );
  assert.equal(msg.args.file_urls.length, 1);
  const stored = msg.args.file_urls[0];
  assert.match(stored, /note\.txt$/);
  assert.deepEqual(msg.args.image_urls, []);
  assert.ok(msg.args.content.includes(`Attached files: ${stored}`));
  // The file is in the workspace.
  const list = await api(srv.url, "GET", `/api/conversations/${cid}/list-files`);
  assert.ok(list.data.includes("note.txt"), JSON.stringify(list.data));
  const file = await api(srv.url, "GET", `/api/conversations/${cid}/select-file?file=note.txt`);
  assert.equal(file.data.code, "attached content\n");
  // The chat names it under the message; drop-me.txt was never uploaded.
  await page.waitForSelector("[data-testid=msg-user] .msg-files:has-text('note.txt')");
  assert.ok(!list.data.includes("drop-me.txt"));
  await screenshot(page, "attachments-sent");
});

test("narrow screens have a Changes tab", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click("[data-testid=tab-changes]");
  await page.locator("[data-testid=change-item][data-path='a.txt']").waitFor();
  await page.waitForTimeout(400); // the drawer's transition after the resize
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  await screenshot(page, "narrow-changes");
  await page.setViewportSize({ width: 1400, height: 900 });
  assert.deepEqual(pageErrors, []);
});
