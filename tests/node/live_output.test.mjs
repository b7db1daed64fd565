// Output as it happens with the real socket.io-client: `oh_output` for clients that
// connect with stream_output=true, after its action and before its observation, in seq
// order; a reconnect mid-command gets the output so far, then the rest; clients without
// the flag get nothing new.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { closeSockets, connectReady, newConversationId, startServer, waitUntil } from "./harness.mjs";

let srv;

before(async () => {
  srv = await startServer();
});

after(async () => {
  closeSockets();
  await srv?.stop();
});

const SLOW = "for i in 1 2 3 4 5 6; do echo step$i; sleep 0.4; done";

function run(socket, command) {
  socket.emit("oh_user_action", { action: "run", args: { command, blocking: true } });
}

const runAction = (frames, command) =>
  frames.find(([n, p]) => n === "oh_event" && p?.action === "run" && p.args?.command === command)?.[1];

const observationOf = (frames, id) => frames.find(([n, p]) => n === "oh_event" && p?.observation === "run" && p.cause === id)?.[1];

async function untilObservation(socket, command, timeout = 15_000) {
  let obs;
  await waitUntil(
    socket,
    () => {
      const a = runAction(socket.frames, command);
      obs = a && observationOf(socket.frames, a.id);
      return !!obs;
    },
    timeout,
    "the command's observation",
  );
  return obs;
}

/** The client's view: chunks of `actionId` deduplicated by seq, checked to be in order. */
function streamed(frames, actionId) {
  let seq = 0;
  let text = "";
  for (const [name, p] of frames) {
    if (name !== "oh_output" || p.action_id !== actionId) continue;
    if (p.seq <= seq) continue;
    assert.equal(p.seq, seq + 1, `no gap: ${JSON.stringify(p)}`);
    seq = p.seq;
    text += p.chunk;
  }
  return { seq, text };
}

test("output arrives after its action, in seq order, before the observation that replaces it", async () => {
  const cid = newConversationId();
  const s = await connectReady(srv.url, { conversation_id: cid, stream_output: "true" });
  run(s, SLOW);
  const obs = await untilObservation(s, SLOW);
  const action = runAction(s.frames, SLOW);
  const at = (pred) => s.frames.findIndex(pred);
  const actionAt = at(([n, p]) => n === "oh_event" && p.id === action.id);
  const obsAt = at(([n, p]) => n === "oh_event" && p.id === obs.id);
  const outs = s.frames.map((f, i) => [f, i]).filter(([[n, p]]) => n === "oh_output" && p.action_id === action.id);
  assert.ok(outs.length >= 4, `chunks as the lines appear: ${outs.length}`);
  for (const [[, p], i] of outs) {
    assert.ok(i > actionAt && i < obsAt, `chunk ${p.seq} between the action and its observation`);
    assert.equal(p.kind, "command");
  }
  assert.deepEqual(
    outs.map(([[, p]]) => p.seq),
    outs.map((_, i) => i + 1),
  );
  assert.equal(outs.at(-1)[0][1].done, true);
  assert.equal(streamed(s.frames, action.id).text, obs.content);
  assert.equal(obs.content, "step1\nstep2\nstep3\nstep4\nstep5\nstep6\n");
});

test("a reconnect mid-command gets the output so far right after its replay, then the rest, with nothing missing", async () => {
  const cid = newConversationId();
  const query = { conversation_id: cid, stream_output: "true" };
  const s = await connectReady(srv.url, query, { reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 200 });
  run(s, SLOW);
  await waitUntil(s, () => s.frames.some(([n, p]) => n === "oh_output" && p.chunk.includes("step2")), 10_000, "step2 streamed");
  const action = runAction(s.frames, SLOW);
  const before = streamed(s.frames, action.id);
  // Resume after the last stored event, as the UI does, then drop the transport.
  const lastStored = Math.max(...s.ohEvents.filter((e) => Number.isInteger(e?.id)).map((e) => e.id));
  s.io.opts.query = { ...query, latest_event_id: String(lastStored) };
  const mark = s.frames.length;
  s.io.engine.close();
  const obs = await untilObservation(s, SLOW);
  const after = s.frames.slice(mark);
  // The server resent the kept output from seq 1 (the client drops what it has) and
  // continued without a gap; the stored events came once each.
  const firstOut = after.find(([n]) => n === "oh_output");
  assert.equal(firstOut[1].seq, 1, "the output so far, from the start");
  assert.ok(before.seq >= 2);
  const all = streamed(s.frames, action.id);
  assert.equal(all.text, obs.content);
  const storedIds = s.ohEvents.filter((e) => Number.isInteger(e?.id)).map((e) => e.id);
  assert.equal(new Set(storedIds).size, storedIds.length, "no stored event twice");
  s.close();
});

test("a client without stream_output gets exactly the stored events, and no oh_output", async () => {
  const cid = newConversationId();
  const watcher = await connectReady(srv.url, { conversation_id: cid, stream_output: "true" });
  const plain = await connectReady(srv.url, { conversation_id: cid });
  run(watcher, SLOW);
  const obs = await untilObservation(plain, SLOW);
  await untilObservation(watcher, SLOW);
  assert.ok(watcher.frames.some(([n]) => n === "oh_output"));
  assert.deepEqual(
    plain.frames.map(([n]) => n).filter((n) => n !== "oh_event"),
    [],
    "only oh_event",
  );
  const stored = (frames) => frames.filter(([n, p]) => n === "oh_event" && Number.isInteger(p?.id) && p.id <= obs.id).map(([, p]) => p.id);
  assert.deepEqual(stored(plain.frames), stored(watcher.frames));
});
