// A long conversation made through the real server: user messages of different sizes
// (plain, markdown with code, long paragraphs) posted over REST, with a user command
// (`run`, shown in the terminal panel) every 250 messages.

import { api } from "./harness.mjs";

/** Message number i: a few shapes, so that items have different heights. */
export function seedText(i) {
  if (i % 10 === 0) return `msg #${i}: a list and some code\n\n- first point\n- second point\n\n\`\`\`python\nfor k in range(${i % 7}):\n    print(k)\n\`\`\``;
  if (i % 7 === 0) return `msg #${i}: ${"a longer paragraph that wraps over several lines in the chat. ".repeat(6)}`;
  return `msg #${i}`;
}

/** Newest stored id of a conversation (-1 when empty). */
export async function newestId(base, cid) {
  const r = await api(base, "GET", `/api/conversations/${cid}/events?reverse=true&limit=1`);
  if (r.status !== 200) throw new Error(`GET events: ${r.status}`);
  return r.data.events.length ? r.data.events[0].id : -1;
}

/** Creates a conversation and stores at least `n` events in it; returns { cid, newest }. */
export async function seedLongConversation(base, n, { concurrency = 16 } = {}) {
  const created = await api(base, "POST", "/api/conversations", {});
  if (created.status !== 200) throw new Error(`create: ${created.status} ${JSON.stringify(created.data)}`);
  const cid = created.data.conversation_id;
  let i = 0;
  let newest = await newestId(base, cid);
  while (newest < n - 1) {
    const batch = [];
    for (let k = 0; k < concurrency && i + k < n; k++) {
      const m = i + k;
      batch.push(
        m % 250 === 249
          ? api(base, "POST", `/api/conversations/${cid}/events`, { action: "run", args: { command: `echo tick-${m}` } })
          : api(base, "POST", `/api/conversations/${cid}/message`, { message: seedText(m) }),
      );
    }
    i += batch.length;
    for (const r of await Promise.all(batch)) if (r.status !== 200) throw new Error(`seed: ${r.status} ${JSON.stringify(r.data)}`);
    if (i % 1000 < concurrency || i >= n - 3 * concurrency) newest = await newestId(base, cid);
  }
  // A last command among the newest events (the terminal shows the loaded window's).
  const run = await api(base, "POST", `/api/conversations/${cid}/events`, { action: "run", args: { command: "echo tick-last" } });
  if (run.status !== 200) throw new Error(`seed: ${run.status} ${JSON.stringify(run.data)}`);
  // Commands answer asynchronously: wait until their observations are stored.
  for (let tries = 0; tries < 100; tries++) {
    const last = await api(base, "GET", `/api/conversations/${cid}/events?reverse=true&limit=20`);
    const evs = last.data.events;
    const runs = evs.filter((e) => e.action === "run").map((e) => e.id);
    if (runs.every((id) => evs.some((e) => e.cause === id))) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { cid, newest: await newestId(base, cid) };
}
