// Message delivery: messages sent while the agent works are queued and taken at its next
// step, interrupt-and-send, idempotent retries with client_message_id (also after a
// restart), and sends while a conversation starts or reopens.
import assert from "node:assert/strict";
import fs from "node:fs";
import { after, afterEach, describe, it } from "node:test";
import {
  closeSockets,
  connect,
  connectReady,
  http,
  isUserMessage,
  newConversationId,
  settle,
  sleep,
  startServer,
  storedEvents,
  waitFor,
} from "./harness.mjs";
import { sawUser, startLlm, textOf } from "./llm.mjs";

const T = { timeout: 60000 };
const WS = { transports: ["websocket"] };

function sendKeyed(socket, content, clientId) {
  return socket.timeout(10000).emitWithAck("oh_user_action", {
    action: "message",
    args: { content, client_message_id: clientId },
  });
}

function stateAt(events, id) {
  let state = null;
  for (const e of events) {
    if (e.id >= id) break;
    if (e.observation === "agent_state_changed") state = e.extras.agent_state;
  }
  return state;
}

function waitState(socket, state, from = 0, timeout = 20000) {
  return waitFor(socket, (e) => e?.observation === "agent_state_changed" && e.extras?.agent_state === state && Number.isInteger(e.id), {
    from,
    timeout,
    label: `agent state ${state}`,
  });
}

/**
 * The rule our UI shows "queued" by: a user message stored while the agent is running
 * stays queued until an agent-sourced action is stored after it. Checks that the model
 * request behind that action really contained the message (every scripted answer names
 * its request: "req-<n>"). Returns how many messages were checked.
 */
function assertQueueRule(events, llm) {
  let checked = 0;
  for (const m of events.filter((e) => isUserMessage(e))) {
    if (stateAt(events, m.id) !== "running") continue;
    const taker = events.find((e) => e.id > m.id && e.source === "agent" && e.action);
    assert.ok(taker, `an agent action takes message ${m.id}`);
    const text = taker.tool_call_metadata?.model_response?.choices?.[0]?.message?.content ?? taker.args?.content ?? "";
    const n = Number(/req-(\d+)/.exec(text)?.[1]);
    assert.ok(Number.isInteger(n), `the action ${taker.id} answers a known request (${text})`);
    assert.ok(sawUser(llm.requests[n], m.args.content), `request ${n}, behind action ${taker.id}, saw the queued message ${JSON.stringify(m.args.content)}`);
    checked += 1;
  }
  return checked;
}

describe("message delivery", () => {
  const servers = [];
  const llms = [];
  afterEach(async () => {
    closeSockets();
    for (const s of servers.splice(0)) await s.stop();
    for (const l of llms.splice(0)) await l.close();
  });
  after(() => closeSockets());

  async function agentServer(answer, env = {}) {
    const llm = await startLlm(answer);
    llms.push(llm);
    const srv = await startServer({ ...llm.env, ...env });
    servers.push(srv);
    return { llm, srv };
  }

  it("a message sent while the model is thinking is queued, then taken by a new model call that sees it", T, async () => {
    const { llm, srv } = await agentServer((req, n) =>
      n === 0
        ? { delayMs: 2000, tool: "think", args: { thought: "planning" }, text: `req-${n}` }
        : { text: `req-${n} done` },
    );
    const s = await connectReady(srv.url, { conversation_id: newConversationId(), latest_event_id: -1 }, WS);
    s.emit("oh_user_action", { action: "message", args: { content: "first task" } });
    await waitState(s, "running");
    await sleep(300);
    s.emit("oh_user_action", { action: "message", args: { content: "one more thing" } });
    await waitFor(s, (e) => e?.source === "agent" && e.action === "message", { timeout: 20000, label: "the agent's answer" });
    await waitState(s, "awaiting_user_input", s.ohEvents.findIndex((e) => e?.source === "agent" && e.action === "message"));
    const events = storedEvents(s);
    assert.equal(events.filter((e) => isUserMessage(e, "one more thing")).length, 1);
    assert.equal(assertQueueRule(events, llm), 1, "the queued message was checked");
    // The slow call was abandoned: its plan (the think) was never stored.
    assert.ok(!events.some((e) => e.action === "think"), "no action of the request that could not see the message");
    assert.ok(llm.requests.length >= 2 && sawUser(llm.requests.at(-1), "one more thing"));
  });

  it("a message sent while a command runs is queued until the command ends, then taken with its output", T, async () => {
    const { llm, srv } = await agentServer((req, n) =>
      n === 0
        ? { tool: "execute_bash", args: { command: "sleep 2; echo slept-well", security_risk: "LOW" }, text: `req-${n}` }
        : { text: `req-${n} done` },
    );
    const s = await connectReady(srv.url, { conversation_id: newConversationId(), latest_event_id: -1 }, WS);
    s.emit("oh_user_action", { action: "message", args: { content: "run it" } });
    const action = await waitFor(s, (e) => e?.action === "run" && e.source === "agent", { timeout: 20000, label: "the command" });
    s.emit("oh_user_action", { action: "message", args: { content: "while it runs" } });
    const queued = await waitFor(s, (e) => isUserMessage(e, "while it runs") && Number.isInteger(e.id), { label: "the queued message" });
    const obs = await waitFor(s, (e) => e?.observation === "run" && e.cause === action.id, { timeout: 20000, label: "the observation" });
    assert.ok(queued.id < obs.id, "the message was stored at once, before the command ended");
    await waitFor(s, (e) => e?.source === "agent" && e.action === "message", { timeout: 20000, label: "the answer" });
    const events = storedEvents(s);
    assert.equal(assertQueueRule(events, llm), 1);
    const second = llm.requests[1];
    const toolResult = second.messages.find((m) => m.role === "tool");
    assert.ok(textOf(toolResult).includes("slept-well"), "the command's output is in the same request");
    assert.equal(llm.requests.length, 2, "one request per step: nothing was asked twice");
  });

  it("interrupt-and-send kills the running command, tells the model, and starts a new step with the message", T, async () => {
    const marker = `${3000 + Math.floor(Math.random() * 1000)}.5`;
    const { llm, srv } = await agentServer((req, n) =>
      n === 0
        ? { tool: "execute_bash", args: { command: `sleep ${marker} && echo never-$((40+2))`, security_risk: "LOW" }, text: `req-${n}` }
        : { text: `req-${n} done` },
    );
    const s = await connectReady(srv.url, { conversation_id: newConversationId(), latest_event_id: -1 }, WS);
    s.emit("oh_user_action", { action: "message", args: { content: "start the long job" } });
    const action = await waitFor(s, (e) => e?.action === "run" && e.source === "agent", { timeout: 20000, label: "the command" });
    await sleep(500);
    assert.ok(sleepers(marker).length > 0, "the command runs");
    s.emit("oh_user_action", { action: "change_agent_state", args: { agent_state: "stopped" } });
    const ack = await sendKeyed(s, "do this instead", "interrupt-1");
    assert.ok(Number.isInteger(ack.event_id), JSON.stringify(ack));
    const obs = await waitFor(s, (e) => e?.observation === "run" && e.cause === action.id, { timeout: 10000, label: "the killed command's observation" });
    assert.ok(!obs.content.includes("never-42"), `the command did not finish: ${obs.content}`);
    assert.notEqual(obs.extras.metadata.exit_code, 0, "a killed command does not exit 0");
    assert.deepEqual(sleepers(marker), [], "the command's process is gone");
    const answer = await waitFor(s, (e) => e?.source === "agent" && e.action === "message", { timeout: 20000, label: "the new step's answer" });
    assert.equal(answer.args.content, "req-1 done");
    const req = llm.requests[1];
    assert.ok(sawUser(req, "do this instead"), "the new step has the message");
    const tool = req.messages.find((m) => m.role === "tool");
    assert.match(textOf(tool), /user interrupted this action/, "the model is told the command was interrupted");
    const events = storedEvents(s);
    assert.equal(events.filter((e) => isUserMessage(e, "do this instead")).length, 1);
    assert.equal(llm.requests.length, 2);
  });

  it("the same client_message_id twice stores one event, and both sends are acknowledged with its id", T, async () => {
    const srv = await startServer();
    servers.push(srv);
    const cid = newConversationId();
    const s = await connectReady(srv.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const [a, b] = await Promise.all([sendKeyed(s, "only once", "retry-1"), sendKeyed(s, "only once", "retry-1")]);
    assert.ok(Number.isInteger(a.event_id));
    assert.equal(b.event_id, a.event_id);
    const c = await sendKeyed(s, "another", "retry-2");
    assert.ok(c.event_id > a.event_id);
    await settle(s);
    const msgs = storedEvents(s).filter((e) => isUserMessage(e));
    assert.deepEqual(msgs.map((e) => [e.id, e.args.content]), [[a.event_id, "only once"], [c.event_id, "another"]]);
    assert.ok(!("client_message_id" in msgs[0].args), "the stored action keeps the upstream shape");
  });

  it("a retry after a server restart is still recognised", T, async () => {
    const first = await startServer();
    servers.push(first);
    const cid = newConversationId();
    const s = await connectReady(first.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const a = await sendKeyed(s, "survives", "restart-1");
    s.close();
    await first.kill("SIGKILL");
    servers.splice(0);
    const second = await startServer({}, { storeDir: first.storeDir });
    servers.push(second);
    const t = await connectReady(second.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const b = await sendKeyed(t, "survives", "restart-1");
    assert.equal(b.event_id, a.event_id);
    await settle(t);
    assert.equal(storedEvents(t).filter((e) => isUserMessage(e, "survives")).length, 1);
  });

  it("hostile client ids are refused with an error and store nothing", T, async () => {
    const srv = await startServer();
    servers.push(srv);
    const s = await connectReady(srv.url, { conversation_id: newConversationId(), latest_event_id: -1 }, WS);
    for (const bad of ["", "x".repeat(129), "a\nb", 42, { nested: true }, ["list"]]) {
      s.emit("oh_user_action", { action: "message", args: { content: "bad id", client_message_id: bad } });
    }
    const huge = "y".repeat(1_000_000);
    s.emit("oh_user_action", { action: "message", args: { content: "bad id", client_message_id: huge } });
    const ok = await sendKeyed(s, "good id", "fine");
    await settle(s);
    const errors = s.ohEvents.filter((e) => e?.error === true && /client_message_id/.test(e.message));
    assert.equal(errors.length, 7);
    const msgs = storedEvents(s).filter((e) => isUserMessage(e));
    assert.deepEqual(msgs.map((e) => [e.id, e.args.content]), [[ok.event_id, "good id"]]);
  });

  for (const when of ["a new conversation", "a conversation reopened after idle close", "a conversation reopened after a restart"]) {
    it(`a message sent at once on connecting to ${when} is taken exactly once`, T, async () => {
      const llm = await startLlm((req, n) => ({ text: `req-${n} done` }));
      llms.push(llm);
      const env = { ...llm.env, SANDBOX_CLOSE_DELAY: "1" };
      let srv = await startServer(env);
      servers.push(srv);
      const cid = newConversationId();
      if (when !== "a new conversation") {
        const s = await connectReady(srv.url, { conversation_id: cid, latest_event_id: -1 }, WS);
        await sendKeyed(s, "earlier", "early-1");
        await waitState(s, "awaiting_user_input", s.ohEvents.findIndex((e) => isUserMessage(e, "earlier")));
        s.close();
        if (when.includes("idle")) {
          const deadline = Date.now() + 15000;
          for (;;) {
            const r = await http("GET", `${srv.url}/api/conversations/${cid}`);
            if (r.json?.status !== "RUNNING") break;
            assert.ok(Date.now() < deadline, `the conversation closed after idling: ${r.text}`);
            await sleep(200);
          }
        } else {
          await srv.kill("SIGKILL");
          servers.splice(0);
          srv = await startServer(env, { storeDir: srv.storeDir });
          servers.push(srv);
        }
      }
      const before = llm.requests.length;
      // Emitted before the connection is even acknowledged: socket.io-client buffers it.
      const s = await new Promise((resolve) => {
        const sock = connect(srv.url, { conversation_id: cid, latest_event_id: -1 }, WS);
        resolve(sock);
      });
      const ack = await sendKeyed(s, "right away", "now-1");
      const retry = await sendKeyed(s, "right away", "now-1");
      assert.equal(retry.event_id, ack.event_id);
      const answer = await waitFor(s, (e) => e?.source === "agent" && e.action === "message" && e.id > ack.event_id, { timeout: 20000, label: "the answer" });
      await settle(s);
      const events = storedEvents(s);
      assert.equal(events.filter((e) => isUserMessage(e, "right away")).length, 1);
      const asked = llm.requests.slice(before);
      assert.equal(asked.length, 1, "one model call for the message");
      assert.ok(sawUser(asked[0], "right away"));
      assert.equal(answer.args.content, `req-${before} done`);
    });
  }
});

/** Pids of processes whose command line is `sleep <marker>`. */
function sleepers(marker) {
  const out = [];
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      if (cmd === `sleep ${marker}` && !/\) Z /.test(stat)) out.push(Number(pid));
    } catch {}
  }
  return out;
}
