// Events survive a restart (SIGKILL and SIGTERM) with the same ids and bytes; ids continue.
import assert from "node:assert/strict";
import { after, afterEach, describe, it } from "node:test";
import {
  closeSockets,
  connect,
  connectReady,
  ids,
  isUserMessage,
  lastId,
  newConversationId,
  range,
  sendMessage,
  settle,
  startServer,
  STARTUP_EVENTS,
  storedEvents,
  waitForMessage,
  waitUntil,
} from "./harness.mjs";

const T = { timeout: 20000 };
const WS = { transports: ["websocket"] };

describe("restart persistence", () => {
  const servers = [];
  afterEach(async () => {
    closeSockets();
    for (const s of servers.splice(0)) await s.stop();
  });
  after(() => closeSockets());

  for (const how of ["SIGKILL", "SIGTERM"]) {
    it(`after ${how}, a new server on the same store replays the same events and continues the ids`, T, async () => {
      const first = await startServer();
      servers.push(first);
      const cid = newConversationId();
      const s = await connectReady(first.url, { conversation_id: cid, latest_event_id: -1 }, WS);
      for (let i = 0; i < 5; i++) sendMessage(s, `persist-${i}`);
      await waitForMessage(s, "persist-4");
      await settle(s);
      const before = storedEvents(s);
      const messages = before.filter((e) => isUserMessage(e));
      assert.deepEqual(
        messages.map((e) => e.args.content),
        range(0, 4).map((i) => `persist-${i}`),
        "the five messages were stored in order",
      );
      assert.equal(messages[0].id, STARTUP_EVENTS, "the first message follows the start-up states");
      s.close();

      if (how === "SIGKILL") {
        const r = await first.kill("SIGKILL");
        assert.equal(r.signal, "SIGKILL");
      } else {
        const r = await first.stop();
        assert.ok(r.code === 0 || r.signal === "SIGTERM", `clean exit on SIGTERM: ${JSON.stringify(r)}`);
      }

      const second = await startServer({}, { storeDir: first.storeDir });
      servers.push(second);
      const r = await connect(second.url, { conversation_id: cid, latest_event_id: -1 }, WS);
      const end = before.at(-1).id;
      await waitUntil(r, () => lastId(r) >= end, 5000, `replay up to id ${end}`);
      await settle(r);
      const replayed = storedEvents(r);
      // Everything that had been delivered live is there, with the same ids and bytes.
      assert.deepEqual(
        replayed.slice(0, before.length).map((e) => JSON.stringify(e)),
        before.map((e) => JSON.stringify(e)),
        "replayed events are identical to the ones delivered before the restart",
      );
      const prior = lastId(r);
      assert.deepEqual(
        replayed.map((e) => e.id),
        range(0, prior),
        "dense ids from 0, none twice",
      );
      if (how === "SIGTERM") {
        // A clean shutdown loses nothing; what it appended while stopping comes after.
        assert.ok(prior >= end);
      }

      sendMessage(r, "after restart");
      const ev = await waitForMessage(r, "after restart");
      assert.equal(ev.id, prior + 1, "ids continue after the restart (5 when nothing but the 5 messages was stored)");
    });
  }
});
