// Messages sent while the agent works, in the web UI: a message typed during a command
// shows as queued until the agent's next step takes it; "Interrupt and send" stops the
// command and starts a new step with the message.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { allEvents, eventually, launchBrowser, screenshot, startServer, watchPage } from "./harness.mjs";
import { startScriptedLlm } from "./scripted_llm.mjs";

const QUEUE = [
  { tool: "execute_bash", args: { command: "sleep 3 && echo slow-done", security_risk: "LOW" } },
  { text: "Done with the command, and I read your note." },
];

const INTERRUPT = [
  { tool: "execute_bash", args: { command: "sleep 120 && echo never-$((40+2))", security_risk: "LOW" } },
  { text: "Switched to the new task." },
];

let llm;
let srv;
let browser;
let page;
let pageErrors;

before(async () => {
  llm = await startScriptedLlm((first) => (first.includes("[interrupt]") ? INTERRUPT : QUEUE));
  srv = await startServer({ env: { LLM_MODEL: "openai/scripted-model", LLM_API_KEY: "sk-scripted", LLM_BASE_URL: llm.url } });
  browser = await launchBrowser();
  page = await browser.context.newPage();
  pageErrors = watchPage(page);
});

after(async () => {
  await browser?.close();
  await srv?.stop();
  await llm?.close();
});

async function startConversation(text) {
  await page.goto(`${srv.url}/`);
  await page.fill("[data-testid=new-message]", text);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/conversations\/[0-9a-f]+/);
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  return page.url().match(/conversations\/([0-9a-f]+)/)[1];
}

const toolRequests = () => llm.requests.filter((r) => Array.isArray(r.tools) && r.tools.length);
const userTexts = (req) => req.messages.filter((m) => m.role === "user").map((m) => JSON.stringify(m.content));

test("a message sent while a command runs shows as queued, then as taken once the agent's next step reads it", async () => {
  const cid = await startConversation("[queue] run the slow command");
  await page.waitForSelector("[data-testid=action-run] .badge-run", { timeout: 20_000 });
  await page.fill("[data-testid=composer]", "also check the logs");
  await page.keyboard.press("Enter");
  const queued = page.locator("[data-testid=msg-user][data-queued=true]", { hasText: "also check the logs" });
  await queued.waitFor({ timeout: 10_000 });
  assert.equal(await queued.locator("[data-testid=queued]").count(), 1);
  await screenshot(page, "queued-message");
  // While queued, the model has not been asked with it.
  assert.ok(!toolRequests().some((r) => userTexts(r).some((t) => t.includes("also check the logs"))), "not yet taken");

  await page.locator("[data-testid=msg-agent]", { hasText: "I read your note" }).waitFor({ timeout: 20_000 });
  assert.equal(await page.locator("[data-testid=queued]").count(), 0, "taken: no longer queued");
  const taking = toolRequests().at(-1);
  assert.ok(userTexts(taking).some((t) => t.includes("also check the logs")), "the step that answered saw the message");
  assert.ok(taking.messages.some((m) => m.role === "tool" && JSON.stringify(m.content).includes("slow-done")), "after the command's output");
  const events = await allEvents(srv.url, cid);
  assert.equal(events.filter((e) => e.source === "user" && e.action === "message" && e.args.content === "also check the logs").length, 1);
  assert.equal(await page.locator("[data-testid=msg-user]", { hasText: "also check the logs" }).count(), 1);
  assert.deepEqual(pageErrors, []);
});

test("interrupt and send stops the running command and starts a new step with the message", async () => {
  const cid = await startConversation("[interrupt] run forever");
  await page.waitForSelector("[data-testid=action-run] .badge-run", { timeout: 20_000 });
  const before = toolRequests().length;
  await page.fill("[data-testid=composer]", "do this instead");
  await page.click("[data-testid=composer-interrupt]");
  await page.locator("[data-testid=msg-agent]", { hasText: "Switched to the new task." }).waitFor({ timeout: 20_000 });
  await page.waitForSelector('[data-testid=agent-state][data-state="awaiting_user_input"]', { timeout: 10_000 });
  await screenshot(page, "interrupt-and-send");

  const events = await allEvents(srv.url, cid);
  const run = events.find((e) => e.action === "run" && e.source === "agent");
  const obs = events.find((e) => e.observation === "run" && e.cause === run.id);
  assert.ok(obs, "the interrupted command has its observation");
  assert.notEqual(obs.extras.metadata.exit_code, 0);
  assert.ok(!obs.content.includes("never-42"), "the command was cut short");
  const stopIdx = events.findIndex((e) => e.action === "change_agent_state" && e.source === "user" && e.args.agent_state === "stopped");
  const msgIdx = events.findIndex((e) => e.action === "message" && e.source === "user" && e.args.content === "do this instead");
  assert.ok(stopIdx >= 0 && msgIdx > stopIdx, "the stop is stored, then the message");
  const asked = toolRequests().slice(before);
  assert.equal(asked.length, 1, "one new step");
  assert.ok(userTexts(asked[0]).some((t) => t.includes("do this instead")));
  assert.ok(asked[0].messages.some((m) => m.role === "tool" && /interrupted/.test(JSON.stringify(m.content))), "the model is told the command was interrupted");
  await eventually(async () => (await page.locator("[data-testid=queued]").count()) === 0, { label: "nothing left queued" });
  assert.deepEqual(pageErrors, []);
});
