// The web UI driving the real agent, with a scripted OpenAI-compatible LLM: the agent's
// command and its output appear, the final state shows, reloading mid-run neither loses
// nor duplicates an event, Stop, pause/resume, and Confirm/Reject in confirmation mode.

import assert from "node:assert/strict";
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
import { startScriptedLlm } from "./scripted_llm.mjs";

const COUNT = [
  {
    tool: "task_tracker",
    args: {
      command: "plan",
      task_list: [
        { id: "1", title: "Count to eight", status: "in_progress", notes: "" },
        { id: "2", title: "Write hello.py", status: "todo", notes: "" },
      ],
    },
  },
  {
    text: "Let me count first.",
    tool: "execute_bash",
    args: { command: "for i in $(seq 1 8); do echo tick $i; sleep 0.3; done", security_risk: "LOW" },
  },
  {
    delayMs: 400,
    tool: "str_replace_editor",
    args: { command: "create", path: "hello.py", file_text: "def main():\n    print('hello')\n\nmain()\n", security_risk: "LOW" },
  },
  {
    delayMs: 400,
    tool: "str_replace_editor",
    args: { command: "str_replace", path: "hello.py", old_str: "print('hello')", new_str: "print('hello, world')", security_risk: "LOW" },
  },
  { delayMs: 300, tool: "execute_bash", args: { command: "python3 hello.py", security_risk: "LOW" } },
  {
    tool: "task_tracker",
    args: {
      command: "plan",
      task_list: [
        { id: "1", title: "Count to eight", status: "done", notes: "" },
        { id: "2", title: "Write hello.py", status: "done", notes: "" },
      ],
    },
  },
  { tool: "think", args: { thought: "The script prints what it should; time to wrap up." } },
  { tool: "finish", args: { message: "Done! I counted to eight and wrote `hello.py`:\n\n```python\nprint('hello, world')\n```" } },
];

const SLEEP = [
  { tool: "execute_bash", args: { command: "sleep 60", security_risk: "LOW" } },
  { tool: "finish", args: { message: "slept" } },
];

const PAUSE = [
  { delayMs: 1200, tool: "think", args: { thought: "step one" } },
  { delayMs: 1200, tool: "think", args: { thought: "step two" } },
  { delayMs: 1200, tool: "think", args: { thought: "step three" } },
  { tool: "finish", args: { message: "Finished after the pause." } },
];

const CONFIRM = [
  { tool: "execute_bash", args: { command: "echo confirmed-run | tee confirmed.txt", security_risk: "HIGH" } },
  { tool: "execute_bash", args: { command: "echo should-not-run > rejected.txt", security_risk: "HIGH" } },
  { text: "Understood, I will not run it." },
];

const BROWSE = () => [
  { tool: "fetch", args: { url: llm.pageUrl, security_risk: "LOW" } },
  { tool: "no_such_tool", args: { x: 1 } },
  { tool: "finish", args: { message: "The page says the answer is 42." } },
];

const CONDENSE = [
  { tool: "think", args: { thought: "first idea" } },
  { tool: "think", args: { thought: "second idea" } },
  { tool: "think", args: { thought: "third idea" } },
  { tool: "finish", args: { message: "Thought it through." } },
];

function script(firstUserText) {
  if (firstUserText.includes("[condense]")) return CONDENSE;
  if (firstUserText.includes("[browse]")) return BROWSE();
  if (firstUserText.includes("[sleep]")) return SLEEP;
  if (firstUserText.includes("[pause]")) return PAUSE;
  if (firstUserText.includes("[confirm]")) return CONFIRM;
  return COUNT;
}

let llm;
let srv;
let browser;
let page;
let pageErrors;
const wsUrls = [];

before(async () => {
  llm = await startScriptedLlm(script);
  srv = await startServer({ env: { LLM_MODEL: "openai/scripted-model", LLM_API_KEY: "sk-scripted", LLM_BASE_URL: llm.url } });
  browser = await launchBrowser();
  page = await browser.context.newPage();
  pageErrors = watchPage(page);
  page.on("websocket", (ws) => wsUrls.push(ws.url()));
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
  const cid = conversationIdFromUrl(page.url());
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  return cid;
}

const agentState = () => page.getAttribute("[data-testid=agent-state]", "data-state");

async function waitAgentState(state, timeout = 30_000) {
  await page.waitForSelector(`[data-testid=agent-state][data-state="${state}"]`, { timeout });
}

/** Every stored event is rendered exactly once in the chat. */
async function assertEveryEventOnce(cid) {
  const events = await allEvents(srv.url, cid);
  const rendered = await renderedIds(page);
  const counts = new Map();
  for (const id of rendered) counts.set(id, (counts.get(id) ?? 0) + 1);
  const dups = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  assert.deepEqual(dups, [], "no event is rendered twice");
  const want = events.map((e) => e.id);
  assert.deepEqual([...rendered].sort((a, b) => a - b), want, "the chat shows exactly the stored events");
  return events;
}

test("the agent's command and output appear, the final state shows, and reloads mid-run lose and duplicate nothing", async () => {
  const cid = await startConversation("Count to eight, then write hello.py");

  // First reload: while the counting command runs.
  await page.waitForSelector("[data-testid=action-run] .badge-run", { timeout: 20_000 });
  await page.reload();
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  // Second reload: once the edits start.
  await page.waitForSelector("[data-testid=action-edit]", { timeout: 20_000 });
  await page.reload();
  await waitAgentState("finished");

  // The command, its output in terminal style and its exit code.
  const run = page.locator("[data-testid=action-run]").first();
  await assert.doesNotReject(run.locator("[data-testid=run-output]", { hasText: "tick 8" }).waitFor());
  assert.equal(await run.locator("[data-testid=exit-code]").innerText(), "exit 0");
  assert.match(await page.locator("[data-testid=chat]").innerText(), /Let me count first\./);
  // The edit as a diff, the plan, the finish message.
  assert.match(await page.locator("[data-testid=diff]").last().innerText(), /\+\s+print\('hello, world'\)/);
  assert.match(await page.locator(".plan").innerText(), /2\/2 done/);
  assert.match(await page.locator("[data-testid=msg-agent]").last().innerText(), /Done! I counted to eight/);
  // The terminal panel has the agent's commands with their output.
  assert.match(await page.locator("[data-testid=terminal]").innerText(), /tick 8[\s\S]*hello, world/);

  await assertEveryEventOnce(cid);
  // After the reloads the page resumed from its last event instead of replaying everything.
  const resumed = wsUrls.filter((u) => u.includes(cid)).map((u) => Number(new URL(u).searchParams.get("latest_event_id")));
  assert.ok(resumed.length >= 3, `three connections, got ${resumed.length}`);
  // The first connection resumes after the newest page fetched over REST (the start-up events).
  assert.ok(resumed[0] >= 0, `the first connection resumes after the REST page: ${resumed}`);
  assert.ok(resumed.slice(1).every((k) => k >= 0), `reloads resume after the cached events: ${resumed}`);
  // The LLM got the tool results back with matching tool_call_ids.
  const last = llm.requests.filter((r) => Array.isArray(r.tools)).at(-1);
  assert.ok(last.messages.some((m) => m.role === "tool" && /tick 8/.test(JSON.stringify(m.content))));

  await page.locator("[data-testid=chat]").evaluate((el) => (el.scrollTop = 0));
  await screenshot(page, "agent-run-top");
  await page.locator("[data-testid=chat]").evaluate((el) => (el.scrollTop = el.scrollHeight));
  await screenshot(page, "agent-run");
  // The same at phone width: no sideways scrolling.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(400); // the sidebar slides out
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `page is ${overflow}px wider than the screen`);
  await page.locator("[data-testid=chat]").evaluate((el) => (el.scrollTop = el.scrollHeight / 3));
  await screenshot(page, "narrow-agent");
  await page.setViewportSize({ width: 1400, height: 900 });
  assert.deepEqual(pageErrors, []);
});

test("fetched pages and tool errors are shown", async () => {
  const cid = await startConversation("[browse] read the test page");
  await waitAgentState("finished");
  const browse = page.locator("[data-testid=action-browse]");
  assert.match(await browse.locator("summary").innerText(), /Fetched\s+http:\/\/127\.0\.0\.1:\d+\/page/);
  await browse.locator("summary").click(); // fetched pages start folded
  assert.match(await browse.innerText(), /Scripted page[\s\S]*42/);
  assert.match(await page.locator("[data-testid=obs-error]").first().innerText(), /no_such_tool/);
  await assertEveryEventOnce(cid);
  await screenshot(page, "agent-browse");
});

test("Condense summarises the older steps and the card shows the summary", async () => {
  const cid = await startConversation("[condense] think it through");
  await waitAgentState("finished");
  await page.click("[data-testid=condense]");
  const card = page.locator("[data-testid=action-condensation]");
  await card.waitFor({ timeout: 15_000 });
  assert.match(await card.locator("summary").innerText(), /Condensed older steps \(events \d+–\d+\)/);
  await card.locator("summary").click();
  // The e2e LLM answers a request without tools (the summary request) with this text.
  assert.match(await card.locator("[data-testid=condensation-summary]").innerText(), /Scripted conversation/);
  const events = await allEvents(srv.url, cid);
  const c = events.find((e) => e.action === "condensation");
  assert.equal(c.args.summary, "Scripted conversation");
  assert.ok(events.some((e) => e.action === "condensation_request" && e.source === "user"));
  await assertEveryEventOnce(cid);
});

test("Stop ends the agent's running command", async () => {
  const cid = await startConversation("[sleep] take a nap");
  await page.waitForSelector("[data-testid=action-run] .badge-run", { timeout: 20_000 });
  assert.equal(await agentState(), "running");
  const t0 = Date.now();
  await page.click("[data-testid=stop]");
  await waitAgentState("stopped", 15_000);
  // The command card gets its (error) result instead of spinning forever.
  await page.waitForSelector("[data-testid=action-run] .card summary .badge:not(.badge-run)", { timeout: 15_000 });
  assert.ok(Date.now() - t0 < 15_000);
  const events = await allEvents(srv.url, cid);
  assert.ok(events.some((e) => e.action === "change_agent_state" && e.args?.agent_state === "stopped"));
  const runId = events.find((e) => e.action === "run").id;
  assert.ok(events.some((e) => e.cause === runId), "the stopped command has an observation");
  await assertEveryEventOnce(cid);
  await screenshot(page, "agent-stopped");
});

test("pause and resume", async () => {
  const cid = await startConversation("[pause] think slowly");
  await waitAgentState("running", 15_000);
  await page.click("[data-testid=pause]");
  await waitAgentState("paused", 15_000);
  await page.waitForSelector("[data-testid=resume]");
  await screenshot(page, "agent-paused");
  await page.click("[data-testid=resume]");
  await waitAgentState("finished", 30_000);
  assert.match(await page.locator("[data-testid=msg-agent]").last().innerText(), /Finished after the pause/);
  await assertEveryEventOnce(cid);
});

test("confirmation mode: Confirm runs the action, Reject does not", async () => {
  const set = await api(srv.url, "POST", "/api/settings", { confirmation_mode: true });
  assert.equal(set.status, 200);
  try {
    const cid = await startConversation("[confirm] run two risky commands");
    await page.waitForSelector("[data-testid=confirm-bar]", { timeout: 20_000 });
    assert.equal(await agentState(), "awaiting_user_confirmation");
    await screenshot(page, "agent-confirm");
    await page.click("[data-testid=confirm-bar] [data-testid=confirm]");
    await page.waitForSelector("[data-testid=run-output]:has-text('confirmed-run')", { timeout: 20_000 });

    await page.waitForSelector("[data-testid=confirm-bar]", { timeout: 20_000 });
    await page.click("[data-testid=confirm-bar] [data-testid=reject]");
    await waitAgentState("awaiting_user_input", 20_000);
    await page.waitForSelector(".obs-note:has-text('You rejected this action')");
    const events = await allEvents(srv.url, cid);
    assert.ok(events.some((e) => e.observation === "user_rejected"), "a user_rejected observation");
    assert.ok(events.some((e) => e.action === "change_agent_state" && e.args.agent_state === "user_confirmed"));
    assert.ok(events.some((e) => e.action === "change_agent_state" && e.args.agent_state === "user_rejected"));
    const ls = await api(srv.url, "GET", `/api/conversations/${cid}/list-files`);
    assert.ok(ls.data.includes("confirmed.txt") && !ls.data.includes("rejected.txt"), JSON.stringify(ls.data));
    await assertEveryEventOnce(cid);
    await screenshot(page, "agent-rejected");
  } finally {
    await api(srv.url, "POST", "/api/settings", { confirmation_mode: false });
  }
});
