// Socket.IO basics: transports, message shapes, legacy alias, refusal without id.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import {
  closeSockets,
  connect,
  connectError,
  connectReady,
  http,
  ids,
  isAgentStateEvent,
  isUserMessage,
  newConversationId,
  range,
  sendMessage,
  settle,
  sleep,
  startServer,
  STARTUP_EVENTS,
  storedEvents,
  TIMESTAMP_RE,
  waitFor,
  waitForMessage,
  waitUntil,
} from "./harness.mjs";

const T = { timeout: 20000 };
const TOP_KEYS = ["id", "timestamp", "source", "message", "action", "args"];
const ARG_KEYS = ["content", "file_urls", "image_urls", "wait_for_response", "security_risk"];

/** Assert the event is a stored user MessageAction with the exact wire shape. */
function assertUserMessage(ev, content, { fileUrls, imageUrls }) {
  assert.deepEqual(Object.keys(ev), TOP_KEYS, "top-level keys and their order");
  assert.ok(Number.isInteger(ev.id), "id is an integer");
  assert.match(ev.timestamp, TIMESTAMP_RE, "timestamp is naive ISO with microseconds");
  assert.equal(ev.source, "user");
  assert.equal(ev.message, content);
  assert.equal(ev.action, "message");
  assert.deepEqual(Object.keys(ev.args), ARG_KEYS, "args keys and their order");
  assert.deepEqual(ev.args, {
    content,
    file_urls: fileUrls,
    image_urls: imageUrls,
    wait_for_response: false,
    security_risk: -1,
  });
  // Naive *local* time, stamped by the server at append: close to now.
  const asLocal = new Date(ev.timestamp.slice(0, 23)); // no zone => parsed as local time
  assert.ok(!Number.isNaN(asLocal.getTime()), `timestamp parses: ${ev.timestamp}`);
  assert.ok(
    Math.abs(asLocal.getTime() - Date.now()) < 120_000,
    `timestamp ${ev.timestamp} is server local time now (now: ${new Date().toString()})`,
  );
}

describe("socket.io transports and message shapes", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  afterEach(() => closeSockets());
  after(async () => {
    closeSockets();
    await server?.stop();
  });

  it("websocket-only: the seed shape {type,source,message} is stored as a user MessageAction", T, async () => {
    const cid = newConversationId();
    // Exactly the seed's connection example (transports, query incl. providers_set).
    const s = await connect(
      server.url,
      { conversation_id: cid, latest_event_id: -1, providers_set: "github,gitlab" },
      { transports: ["websocket"] },
    );
    assert.equal(s.io.engine.transport.name, "websocket");
    const text = "Hello, agent!";
    s.emit("oh_user_action", { type: "message", source: "user", message: text });
    const ev = await waitFor(s, (e) => e && e.action === "message", { label: "the stored message" });
    assertUserMessage(ev, text, { fileUrls: [], imageUrls: [] });
    // Nothing before it but the agent's start-up states (sent at once, it may come
    // before the agent says it is ready).
    const before = storedEvents(s).filter((e) => e.id < ev.id);
    assert.equal(before[0]?.extras?.agent_state, "loading");
    assert.ok(before.every(isAgentStateEvent), JSON.stringify(before));
    assert.deepEqual(ids(before), range(0, ev.id - 1));
  });

  it("the REST events route returns byte-identical JSON to what was delivered live", T, async () => {
    const cid = newConversationId();
    const s = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, { transports: ["websocket"] });
    sendMessage(s, "one");
    sendMessage(s, "two");
    await waitForMessage(s, "two");
    await settle(s);
    const live = storedEvents(s);
    const res = await http("GET", `${server.url}/api/conversations/${cid}/events?start_id=0&limit=100`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.json), ["events", "has_more"]);
    assert.equal(res.json.has_more, false);
    assert.deepEqual(
      res.json.events.map((e) => JSON.stringify(e)),
      live.map((e) => JSON.stringify(e)),
    );
  });

  it("default transports: polling then upgrade to websocket; OpenHands shape {action,args} is stored", T, async () => {
    const cid = newConversationId();
    const s = await connect(server.url, { conversation_id: cid, latest_event_id: -1 });
    assert.equal(s.initialTransport, "polling", "socket.io-client opens with long-polling by default");
    // Sent right away (possibly while still on polling, or during the upgrade).
    s.emit("oh_user_action", { action: "message", args: { content: "hi" } });
    const ev = await waitForMessage(s, "hi");
    assertUserMessage(ev, "hi", { fileUrls: null, imageUrls: null });
    assert.ok(storedEvents(s).filter((e) => e.id < ev.id).every(isAgentStateEvent));

    const deadline = Date.now() + 3000;
    while (s.io.engine.transport.name !== "websocket" && Date.now() < deadline) await sleep(25);
    assert.equal(s.io.engine.transport.name, "websocket", "engine upgraded to websocket within 3 s");
    assert.ok(s.connected);

    // And the conversation keeps working after the upgrade.
    s.emit("oh_user_action", { action: "message", args: { content: "after upgrade" } });
    const ev2 = await waitForMessage(s, "after upgrade");
    assertUserMessage(ev2, "after upgrade", { fileUrls: null, imageUrls: null });
    assert.ok(ev2.id > ev.id);
  });

  it("polling only: send/receive, and 50 messages in a row are all delivered in id order", T, async () => {
    const cid = newConversationId();
    const s = await connectReady(server.url, { conversation_id: cid, latest_event_id: -1 }, { transports: ["polling"] });
    assert.equal(s.io.engine.transport.name, "polling");
    sendMessage(s, "first over polling");
    const first = await waitForMessage(s, "first over polling");
    assertUserMessage(first, "first over polling", { fileUrls: null, imageUrls: null });
    assert.equal(first.id, STARTUP_EVENTS);

    for (let i = 0; i < 50; i++) sendMessage(s, `poll-${i}`);
    await waitForMessage(s, "poll-49", 15000);
    await settle(s);
    const msgs = storedEvents(s).filter((e) => isUserMessage(e) && e.args.content.startsWith("poll-"));
    assert.deepEqual(
      msgs.map((e) => e.args.content),
      range(0, 49).map((i) => `poll-${i}`),
      "all 50 delivered, once each, in the order sent",
    );
    for (let i = 1; i < msgs.length; i++) assert.ok(msgs[i].id > msgs[i - 1].id, "ids increase");
    // Every stored event of the conversation arrived once, densely, in order.
    const all = storedEvents(s).map((e) => e.id);
    assert.deepEqual(all, range(0, all.length - 1));
    assert.equal(s.io.engine.transport.name, "polling");
  });

  it("legacy oh_action alias stores a message just like oh_user_action", T, async () => {
    const cid = newConversationId();
    const s = await connectReady(server.url, { conversation_id: cid, latest_event_id: -1 }, { transports: ["websocket"] });
    s.emit("oh_action", { action: "message", args: { content: "via legacy alias" } });
    const a = await waitForMessage(s, "via legacy alias");
    s.emit("oh_user_action", { action: "message", args: { content: "via new name" } });
    const b = await waitForMessage(s, "via new name");
    assertUserMessage(a, "via legacy alias", { fileUrls: null, imageUrls: null });
    assertUserMessage(b, "via new name", { fileUrls: null, imageUrls: null });
    assert.equal(a.id, STARTUP_EVENTS);
    assert.ok(b.id > a.id);
    // The seed shape works on the alias too.
    s.emit("oh_action", { type: "message", source: "user", message: "seed via alias" });
    const c = await waitForMessage(s, "seed via alias");
    assertUserMessage(c, "seed via alias", { fileUrls: [], imageUrls: [] });
  });

  it("connect without conversation_id is refused with 'No conversation_id in query params'", T, async () => {
    for (const transports of [["websocket"], ["polling"]]) {
      const err = await connectError(server.url, { latest_event_id: -1 }, { transports });
      assert.equal(err.message, "No conversation_id in query params", `transports ${transports}`);
    }
  });

  it("connect with an empty conversation_id is refused the same way", T, async () => {
    const err = await connectError(server.url, { conversation_id: "", latest_event_id: -1 }, { transports: ["websocket"] });
    assert.equal(err.message, "No conversation_id in query params");
  });

  it("connecting with an unknown conversation_id creates the conversation", T, async () => {
    const cid = newConversationId();
    const s = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, { transports: ["websocket"] });
    sendMessage(s, "exists now");
    await waitForMessage(s, "exists now");
    const res = await http("GET", `${server.url}/api/conversations/${cid}`);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json?.conversation_id, cid);
  });
});
