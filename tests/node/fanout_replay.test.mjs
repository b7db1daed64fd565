// Fan-out, isolation, replay after latest_event_id, the replay/live race, reconnects.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, it } from "node:test";
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
  sleep,
  startServer,
  STARTUP_EVENTS,
  storedEvents,
  waitFor,
  waitForMessage,
  waitUntil,
} from "./harness.mjs";

const T = { timeout: 20000 };
const WS = { transports: ["websocket"] };

/** Assert a list of stored events has ids exactly from..to, each once, in order. */
function assertDense(events, from, to, what) {
  assert.deepEqual(ids(events), range(from, to), `${what}: ids exactly ${from}..${to}, in order, none twice`);
}

/** Assert every event of `events` is byte-identical to the reference copy with the same id. */
function assertSameBytes(events, reference, what) {
  const byId = new Map(reference.map((e) => [e.id, JSON.stringify(e)]));
  for (const e of events) {
    assert.ok(byId.has(e.id), `${what}: reference has id ${e.id}`);
    assert.equal(JSON.stringify(e), byId.get(e.id), `${what}: event ${e.id} identical to the live copy`);
  }
}

describe("fan-out, replay and reconnect", () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  afterEach(() => closeSockets());
  after(async () => {
    closeSockets();
    await server?.stop();
  });

  it("a message reaches every client of its conversation (identical JSON) and no other conversation", T, async () => {
    const A = newConversationId();
    const B = newConversationId();
    const a1 = await connectReady(server.url, { conversation_id: A, latest_event_id: -1 }, WS);
    const a2 = await connectReady(server.url, { conversation_id: A, latest_event_id: -1 }, WS);
    const b1 = await connectReady(server.url, { conversation_id: B, latest_event_id: -1 }, WS);

    const markA = `fan-out-A-${newConversationId()}`;
    sendMessage(a1, markA);
    const e1 = await waitForMessage(a1, markA);
    const e2 = await waitForMessage(a2, markA);
    assert.equal(JSON.stringify(e1), JSON.stringify(e2), "both A clients get the same bytes");
    assert.equal(e1.id, STARTUP_EVENTS);

    const markB = `fan-out-B-${newConversationId()}`;
    sendMessage(b1, markB);
    const eb = await waitForMessage(b1, markB);
    assert.equal(eb.id, STARTUP_EVENTS, "conversation B has its own id sequence");

    await settle([a1, a2, b1], 300);
    const has = (s, mark) => s.ohEvents.some((e) => JSON.stringify(e).includes(mark));
    assert.ok(!has(b1, markA), "B's client never sees A's message");
    assert.ok(!has(a1, markB) && !has(a2, markB), "A's clients never see B's message");
    // And everything A's two clients received is the same, in the same order.
    assert.deepEqual(
      storedEvents(a1).map((e) => JSON.stringify(e)),
      storedEvents(a2).map((e) => JSON.stringify(e)),
    );
  });

  it("replay: latest_event_id=K gets exactly the events after K, then live ones, none twice", T, async () => {
    const cid = newConversationId();
    const w = await connectReady(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    for (let i = 0; i < 10; i++) sendMessage(w, `replay-${i}`);
    await waitForMessage(w, "replay-9");
    await settle(w);
    const live = storedEvents(w);
    const maxId = live[live.length - 1].id;
    assertDense(live, 0, maxId, "writer's live feed");
    const msgs = live.filter((e) => isUserMessage(e));
    assert.deepEqual(
      msgs.map((e) => e.args.content),
      range(0, 9).map((i) => `replay-${i}`),
    );
    // (The agent's state event after the first message may fall anywhere among them.)
    assert.equal(msgs[0].id, STARTUP_EVENTS, "the first message follows the start-up states");

    // Reader from K=4.
    const r = await connect(server.url, { conversation_id: cid, latest_event_id: 4 }, WS);
    await waitUntil(r, () => lastId(r) >= maxId, 5000, `replay up to id ${maxId}`);
    await settle(r);
    const replayed = storedEvents(r);
    assertDense(replayed, 5, maxId, "replay after K=4");
    assertSameBytes(replayed, live, "replay after K=4");
    assert.deepEqual(
      replayed.filter((e) => isUserMessage(e)).map((e) => e.args.content),
      msgs.filter((e) => e.id > 4).map((e) => e.args.content),
    );

    // Reader from the beginning.
    const all = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    await waitUntil(all, () => lastId(all) >= maxId, 5000, `full replay up to id ${maxId}`);
    await settle(all);
    assertDense(storedEvents(all), 0, maxId, "replay with K=-1");
    assertSameBytes(storedEvents(all), live, "replay with K=-1");

    // A live message after the replay: next id, delivered once to everybody.
    sendMessage(w, "replay-live");
    const lw = await waitForMessage(w, "replay-live");
    assert.equal(lw.id, maxId + 1, "the live message gets the next id");
    const lr = await waitForMessage(r, "replay-live");
    const la = await waitForMessage(all, "replay-live");
    assert.equal(JSON.stringify(lr), JSON.stringify(lw));
    assert.equal(JSON.stringify(la), JSON.stringify(lw));
    await settle([w, r, all]);
    const end = lastId(w);
    assertDense(storedEvents(r), 5, end, "reader K=4 after the live message");
    assertDense(storedEvents(all), 0, end, "reader K=-1 after the live message");
    assertSameBytes(storedEvents(r), storedEvents(w), "reader K=4");
    assertSameBytes(storedEvents(all), storedEvents(w), "reader K=-1");
  });

  it("latest_event_id absent means -1 (everything from 0)", T, async () => {
    const cid = newConversationId();
    const w = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    for (let i = 0; i < 3; i++) sendMessage(w, `nolatest-${i}`);
    await waitForMessage(w, "nolatest-2");
    await settle(w);
    const live = storedEvents(w);
    const r = await connect(server.url, { conversation_id: cid }, WS);
    await waitUntil(r, () => lastId(r) >= lastId(w), 5000, "full replay");
    await settle(r);
    assertDense(storedEvents(r), 0, lastId(w), "replay without latest_event_id");
    assertSameBytes(storedEvents(r), live, "replay without latest_event_id");
  });

  it("replay race: 20 clients joining during a 300-message burst each get exactly K+1..end", T, async () => {
    const cid = newConversationId();
    const N = 300;
    const w = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const readers = [];
    const joins = [];
    // Clients join at random moments while the burst is being processed, each with a
    // random K in [-1, highest id seen so far].
    for (let i = 0; i < 20; i++) {
      const delay = Math.floor(Math.random() * 400);
      joins.push(
        (async () => {
          await sleep(delay);
          const K = Math.floor(Math.random() * (lastId(w) + 2)) - 1;
          const s = await connect(server.url, { conversation_id: cid, latest_event_id: K }, { ...WS, connectTimeout: 10000 });
          readers.push({ K, s });
        })(),
      );
    }
    // The burst: no awaiting between emits, except a short pause every 30 messages so
    // that the joins land inside it.
    for (let i = 0; i < N; i++) {
      sendMessage(w, `race-${i}`);
      if (i % 30 === 29) await sleep(40);
    }
    await Promise.all(joins);
    await waitForMessage(w, `race-${N - 1}`, 15000);
    await settle(w, 300, 5000);
    const end = lastId(w);
    // Every reader catches up to the writer's last id (a reader that joined with K >= end
    // has nothing to receive).
    await Promise.all(
      readers.map(({ K, s }) => waitUntil(s, () => K >= end || lastId(s) >= end, 15000, `reader K=${K} reaching id ${end}`)),
    );
    await settle([w, ...readers.map((r) => r.s)], 300, 5000);
    assert.equal(lastId(w), end, "nothing new was stored after the burst");

    const live = storedEvents(w);
    assertDense(live, 0, end, "writer");
    assert.deepEqual(
      live.filter((e) => isUserMessage(e)).map((e) => e.args.content),
      range(0, N - 1).map((i) => `race-${i}`),
      "writer sees its 300 messages once each, in order",
    );
    for (const { K, s } of readers) {
      const got = storedEvents(s);
      assertDense(got, K + 1, end, `reader with K=${K}`);
      assertSameBytes(got, live, `reader with K=${K}`);
    }
  });

  it("reconnect through socket.io's own reconnection resumes from latest_event_id with no gap or duplicate", T, async () => {
    const cid = newConversationId();
    const w = await connect(server.url, { conversation_id: cid, latest_event_id: -1 }, WS);
    const c = await connect(
      server.url,
      { conversation_id: cid, latest_event_id: -1 },
      { ...WS, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200, randomizationFactor: 0 },
    );
    // What the OpenHands UI does: remember the last id, rewrite the query on disconnect.
    let last = -1;
    c.on("oh_event", (e) => {
      if (e && Number.isInteger(e.id)) last = e.id;
    });
    let disconnects = 0;
    let connects = 0;
    c.on("disconnect", () => {
      disconnects++;
      c.io.opts.query.latest_event_id = last;
    });
    c.on("connect", () => connects++);

    let n = 0;
    const send = (k) => {
      for (let i = 0; i < k; i++) sendMessage(w, `rc-${n++}`);
    };

    send(3);
    await waitForMessage(c, `rc-${n - 1}`);

    for (let round = 1; round <= 2; round++) {
      c.io.engine.close(); // transport drops; socket.io-client reconnects by itself
      send(5); // sent while c is away
      await waitUntil(c, () => connects === round && c.connected, 8000, `reconnect #${round}`);
      send(2);
      await waitForMessage(c, `rc-${n - 1}`, 8000);
    }
    await settle([w, c]);
    assert.equal(disconnects, 2);

    const live = storedEvents(w);
    const end = lastId(w);
    assertDense(live, 0, end, "writer");
    const got = storedEvents(c);
    assertDense(got, 0, end, "reconnecting client (union of all its connections)");
    assertSameBytes(got, live, "reconnecting client");
    assert.deepEqual(
      got.filter((e) => isUserMessage(e)).map((e) => e.args.content),
      range(0, n - 1).map((i) => `rc-${i}`),
    );
  });
});
