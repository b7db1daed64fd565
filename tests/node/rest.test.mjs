// REST and Socket.IO are two doors to the same event stream.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import {
  closeSockets,
  connect,
  http,
  ids,
  isUserMessage,
  newConversationId,
  settle,
  startServer,
  storedEvents,
  waitFor,
  waitForMessage,
} from "./harness.mjs";

const T = { timeout: 20000 };
const WS = { transports: ["websocket"] };

describe("REST + socket", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  afterEach(() => closeSockets());
  after(async () => {
    closeSockets();
    await server?.stop();
  });

  it("POST /api/conversations with initial_user_msg: a socket replays loading, then that message", T, async () => {
    const res = await http("POST", `${server.url}/api/conversations`, { body: { initial_user_msg: "start here" } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json?.status, "ok", res.text);
    const cid = res.json.conversation_id;
    assert.match(cid, /^[0-9a-f]{32}$/, "conversation ids are uuid4 hex");

    const s = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const loading = await waitFor(s, (e) => e && Number.isInteger(e.id), { label: "the first stored event" });
    assert.equal(loading.id, 0);
    assert.equal(loading.extras?.agent_state, "loading", JSON.stringify(loading));
    const first = await waitFor(s, (e) => e && Number.isInteger(e.id) && e.id === 1, { label: "the second stored event" });
    assert.ok(isUserMessage(first, "start here"), `then the user message: ${JSON.stringify(first)}`);
    assert.deepEqual(Object.keys(first), ["id", "timestamp", "source", "message", "action", "args"]);
    assert.equal(first.message, "start here");
  });

  it("POST /api/conversations/{id}/message is delivered live to connected sockets", T, async () => {
    const created = await http("POST", `${server.url}/api/conversations`, { body: {} });
    assert.equal(created.status, 200, created.text);
    const cid = created.json.conversation_id;
    const s1 = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const s2 = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, { transports: ["polling"] });
    await settle([s1, s2]);
    const before = storedEvents(s1).length ? storedEvents(s1).at(-1).id : -1;

    const res = await http("POST", `${server.url}/api/conversations/${cid}/message`, { body: { message: "via rest" } });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { success: true });
    const e1 = await waitForMessage(s1, "via rest");
    const e2 = await waitForMessage(s2, "via rest");
    assert.equal(JSON.stringify(e1), JSON.stringify(e2));
    assert.equal(e1.id, before + 1);
    assert.equal(e1.source, "user");
    assert.deepEqual(Object.keys(e1), ["id", "timestamp", "source", "message", "action", "args"]);

    // The REST events route sees it too, with the same bytes.
    const evs = await http("GET", `${server.url}/api/conversations/${cid}/events?start_id=0&limit=100`);
    assert.equal(evs.status, 200, evs.text);
    const stored = evs.json.events.find((e) => e.id === e1.id);
    assert.equal(JSON.stringify(stored), JSON.stringify(e1));
  });

  it("a message sent over the socket is visible through GET /events", T, async () => {
    const cid = newConversationId();
    const s = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    s.emit("oh_user_action", { action: "message", args: { content: "socket then rest" } });
    const ev = await waitForMessage(s, "socket then rest");
    const res = await http("GET", `${server.url}/api/conversations/${cid}/events?start_id=0&limit=100`);
    assert.equal(res.status, 200, res.text);
    assert.equal(JSON.stringify(res.json.events.find((e) => e.id === ev.id)), JSON.stringify(ev));
  });
});
