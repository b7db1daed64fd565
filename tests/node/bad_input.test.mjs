// Bad input never hurts others: the sender alone gets {error:true,message}, the
// conversation goes on with dense ids.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
import {
  closeSockets,
  connect,
  isErrorPayload,
  lastId,
  newConversationId,
  sendMessage,
  settle,
  startServer,
  storedEvents,
  waitFor,
  waitForMessage,
} from "./harness.mjs";

const T = { timeout: 20000 };
const WS = { transports: ["websocket"] };

const BAD_INPUTS = [
  ["a string payload", (s) => s.emit("oh_user_action", "hello")],
  ["an array payload", (s) => s.emit("oh_user_action", [1, 2, 3])],
  ["no payload", (s) => s.emit("oh_user_action")],
  ["an unknown action", (s) => s.emit("oh_user_action", { action: "no_such_action", args: {} })],
  ["args that are not an object", (s) => s.emit("oh_user_action", { action: "message", args: "notanobject" })],
  ["a message without content", (s) => s.emit("oh_user_action", { action: "message", args: {} })],
  ["neither action nor type", (s) => s.emit("oh_user_action", { foo: 1 })],
  ["an unknown event name", (s) => s.emit("not_an_event", {})],
  [
    "a 5 MB message",
    (s) => s.emit("oh_user_action", { action: "message", args: { content: "x".repeat(5 * 1024 * 1024) } }),
  ],
];

function assertErrorShape(p, what) {
  assert.ok(p && typeof p === "object" && !Array.isArray(p), `${what}: payload is an object`);
  assert.deepEqual(Object.keys(p).sort(), ["error", "message"], `${what}: exactly the keys error, message (${JSON.stringify(p)})`);
  assert.equal(p.error, true, what);
  assert.equal(typeof p.message, "string", what);
  assert.ok(p.message.length > 0, `${what}: non-empty message`);
}

describe("bad input on a live conversation", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  afterEach(() => closeSockets());
  after(async () => {
    closeSockets();
    await server?.stop();
  });

  for (const [what, send] of BAD_INPUTS) {
    it(`${what}: error to the sender only; the conversation goes on with the next dense id`, T, async () => {
      const cid = newConversationId();
      const sender = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
      const bystander = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
      sendMessage(sender, "before");
      await waitForMessage(bystander, "before");
      await settle([sender, bystander]);
      const before = lastId(sender);
      const from = sender.ohEvents.length;

      send(sender);
      const err = await waitFor(sender, isErrorPayload, { from, timeout: 10000, label: `error payload for ${what}` });
      assertErrorShape(err, what);

      await settle([sender, bystander], 300);
      assert.ok(sender.connected, "the sender is still connected");
      assert.deepEqual(bystander.ohEvents.filter(isErrorPayload), [], "the bystander gets none of the error payloads");
      assert.equal(lastId(sender), before, "bad input stored nothing");
      assert.equal(lastId(bystander), before, "bad input stored nothing (bystander view)");

      sendMessage(sender, "after");
      const ok = await waitForMessage(sender, "after");
      assert.equal(ok.id, before + 1, "the next valid message gets the next dense id");
      const okB = await waitForMessage(bystander, "after");
      assert.equal(JSON.stringify(okB), JSON.stringify(ok));
    });
  }

  it("all bad inputs in a row: one error each to the sender, nothing to the bystander, nothing stored", T, async () => {
    const cid = newConversationId();
    const sender = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const bystander = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    await settle([sender, bystander]);
    const before = lastId(sender);

    for (const [what, send] of BAD_INPUTS) {
      const from = sender.ohEvents.length;
      send(sender);
      const err = await waitFor(sender, isErrorPayload, { from, timeout: 10000, label: `error payload for ${what}` });
      assertErrorShape(err, what);
    }
    await settle([sender, bystander], 300);
    assert.equal(sender.ohEvents.filter(isErrorPayload).length, BAD_INPUTS.length, "exactly one error per bad input");
    assert.deepEqual(bystander.ohEvents.filter(isErrorPayload), []);
    assert.equal(lastId(sender), before);

    sendMessage(sender, "still alive");
    const ok = await waitForMessage(sender, "still alive");
    assert.equal(ok.id, before + 1);
    await waitForMessage(bystander, "still alive");
    const ids = storedEvents(sender).map((e) => e.id);
    assert.deepEqual(ids, [...Array(ids.length).keys()], "ids dense from 0");
  });
});
