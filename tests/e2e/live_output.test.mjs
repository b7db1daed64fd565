// Output as it happens in the web UI: a running command's card and the terminal show its
// output growing before it ends, then the stored observation replaces it.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { allEvents, api, eventually, launchBrowser, screenshot, startServer, watchPage } from "./harness.mjs";
import { startScriptedLlm } from "./scripted_llm.mjs";

let srv;
let browser;
let page;
let pageErrors;

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

test("a running command's output grows in the terminal, then the observation replaces it", async () => {
  const { status, data } = await api(srv.url, "POST", "/api/conversations", {});
  assert.equal(status, 200, JSON.stringify(data));
  const cid = data.conversation_id;
  await page.goto(`${srv.url}/conversations/${cid}`);
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  const input = page.locator("[data-testid=terminal-input]");
  await input.fill("for i in 1 2 3 4 5 6; do echo tick$i; sleep 0.7; done");
  await input.press("Enter");

  const term = page.locator("[data-testid=terminal-live]");
  await term.waitFor({ timeout: 10_000 });
  await eventually(async () => /tick1/.test(await term.innerText()), { label: "tick1 in the terminal" });
  assert.doesNotMatch(await term.innerText(), /tick6/, "shown before the command ends");
  // It grows while the command runs, and nothing is stored yet.
  await eventually(async () => /tick3/.test(await term.innerText()), { label: "tick3 in the terminal" });
  const stored = await allEvents(srv.url, cid);
  assert.ok(!stored.some((e) => e.observation === "run"), "the command has not ended yet");
  await screenshot(page, "live-output");

  // The observation replaces the live output.
  const entry = page.locator("[data-testid=terminal-entry]", { hasText: "for i in 1 2 3 4 5 6" }).last();
  await eventually(async () => (await term.count()) === 0 && /tick6/.test(await entry.innerText()), {
    timeout: 15_000,
    label: "the live output replaced by the observation",
  });
  const whole = await entry.innerText();
  for (let i = 1; i <= 6; i++) assert.match(whole, new RegExp(`tick${i}`));
  assert.deepEqual(pageErrors, []);
});

test("the agent's answer shows as it is written, then its command's output grows in the card", async () => {
  const llm = await startScriptedLlm([
    {
      textPieces: ["I will ", "count ", "the ticks ", "slowly."],
      pieceDelayMs: 500,
      tool: "execute_bash",
      args: { command: "for i in 1 2 3 4 5; do echo beat$i; sleep 0.7; done", security_risk: "LOW" },
    },
    { tool: "finish", args: { message: "Counted." } },
  ]);
  const agentSrv = await startServer({ env: { LLM_MODEL: "openai/scripted-model", LLM_API_KEY: "sk-scripted", LLM_BASE_URL: llm.url } });
  try {
    // Opened first, so that the UI watches when the message reaches the agent.
    const { data } = await api(agentSrv.url, "POST", "/api/conversations", {});
    await page.goto(`${agentSrv.url}/conversations/${data.conversation_id}`);
    await page.waitForSelector("[data-testid=agent-state][data-state=awaiting_user_input]", { timeout: 15_000 });
    await page.fill("[data-testid=composer]", "Count the ticks");
    await page.keyboard.press("Enter");
    const thought = page.locator("[data-testid=live-thought]");
    await thought.waitFor({ timeout: 15_000 });
    const partial = await thought.innerText();
    assert.match(partial, /I will/);
    assert.doesNotMatch(partial, /slowly\./, "shown while it is written");
    await eventually(async () => /count the ticks/.test(await thought.innerText()), { label: "the answer grows" });

    const card = page.locator("[data-testid=run-live-output]");
    await card.waitFor({ timeout: 15_000 });
    assert.equal(await thought.count(), 0, "the stored action replaced the answer being written");
    await eventually(async () => /beat2/.test(await card.innerText()), { label: "beat2 in the card" });
    assert.doesNotMatch(await card.innerText(), /beat5/);
    await page.waitForSelector("[data-testid=run-output]:has-text('beat5')", { timeout: 15_000 });
    assert.equal(await card.count(), 0);
    const step = llm.requests.find((r) => Array.isArray(r.tools) && r.tools.length > 0);
    assert.equal(step.stream, true, "the UI watches, so the answer is streamed");
    assert.deepEqual(pageErrors, []);
  } finally {
    await agentSrv.stop();
    await llm.close();
  }
});
