import { describe, expect, it, vi } from "vitest";
import { EventLog, derive } from "../src/lib/eventlog";
import { OlderScan } from "../src/lib/history";
import { ConversationSession } from "../src/lib/session";
import type { OHEvent } from "../src/lib/types";
import { agentMessage, runAction, runObs, stateChanged, taskTracking, userMessage } from "./fixtures";

const ids = (evs: OHEvent[]) => evs.map((e) => e.id);
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

/**
 * The REST events route as the server answers it (docs/protocol.md): ids in
 * [start_id, end_id], newest first with `reverse`, `limit` at most 100, `has_more` when
 * the page was cut. `maxPerPage` models a page cut short by its size.
 */
function fakeServer(stored: OHEvent[], opts: { maxPerPage?: number; drop?: Set<number> } = {}) {
  const calls: { start: number; end?: number; limit: number; reverse: boolean }[] = [];
  const events = vi.fn(async (_cid: string, start: number, end?: number, limit = 100, reverse = false) => {
    calls.push({ start, end, limit, reverse });
    if (limit > 100) throw Object.assign(new Error("Invalid limit"), { status: 400 });
    let sel = stored.filter((e) => e.id >= start && (end === undefined || e.id <= end) && !opts.drop?.has(e.id));
    if (reverse) sel = [...sel].reverse();
    const cap = Math.min(limit, opts.maxPerPage ?? limit);
    return { events: sel.slice(0, cap), has_more: sel.length > cap };
  });
  return { events, calls };
}

/** A conversation of n events: start-up state, a task list, then user messages. */
function longConversation(n: number): OHEvent[] {
  const out: OHEvent[] = [stateChanged(0, "loading"), stateChanged(1, "awaiting_user_input")];
  out.push(taskTracking(2, [{ id: "1", title: "read the code", status: "done" }]));
  out.push(agentMessage(3, "What next?"));
  for (let i = out.length; i < n; i++) out.push(userMessage(i, `message ${i}`));
  return out;
}

function fakeIo() {
  const sockets: any[] = [];
  const io = vi.fn((_uri: string, opts: any) => {
    const handlers = new Map<string, Function[]>();
    const socket: any = {
      connected: false,
      active: true,
      opts,
      io: { opts: { query: opts.query }, on: () => {}, removeAllListeners: () => {} },
      on: (ev: string, fn: Function) => handlers.set(ev, [...(handlers.get(ev) ?? []), fn]),
      emit: () => {},
      removeAllListeners: () => handlers.clear(),
      disconnect: () => {},
      fire: (ev: string, ...args: unknown[]) => {
        for (const fn of handlers.get(ev) ?? []) fn(...args);
      },
    };
    sockets.push(socket);
    return socket;
  });
  return { io, sockets };
}

async function open(stored: OHEvent[], serverOpts: { maxPerPage?: number; drop?: Set<number> } = {}) {
  const server = fakeServer(stored, serverOpts);
  const api = {
    getConversation: vi.fn(async (id: string) => ({ conversation_id: id, title: "T", status: "RUNNING" })),
    startConversation: vi.fn(async () => ({ status: "ok" })),
    events: server.events,
  };
  const { io, sockets } = fakeIo();
  const s = new ConversationSession("abc", { io: io as any, api: api as any, kv: null, origin: "http://x", backfillDelayMs: 0 });
  await s.open();
  return { s, server, sockets };
}

describe("EventLog window", () => {
  it("starts at the newest page and knows older events exist", () => {
    const log = new EventLog();
    log.startWindow(range(9900, 10000).reverse().map((i) => userMessage(i, "m")), true);
    expect(log.floor).toBe(9900);
    expect(log.hasOlder).toBe(true);
    expect(ids(log.events)).toEqual(range(9900, 10000));
    expect(log.latestEventId).toBe(9999);
    expect(log.missingIds()).toEqual([]);
  });

  it("a newest page that is everything starts the window at id 0", () => {
    const log = new EventLog();
    log.startWindow([userMessage(2, "c"), userMessage(1, "b")], false);
    expect(log.hasOlder).toBe(false);
    // Id 0 never came: a gap to back-fill, not a silent hole.
    expect(log.missingIds()).toEqual([0]);
  });

  it("prepends older pages without gaps or duplicates", () => {
    const log = new EventLog();
    log.startWindow(range(200, 300).map((i) => userMessage(i, "m")), true);
    expect(log.addOlder(range(100, 200).map((i) => userMessage(i, "m")), true)).toBe(100);
    // An overlapping page (a retried request) adds only what is new.
    expect(log.addOlder(range(50, 250).map((i) => userMessage(i, "m")), true)).toBe(50);
    expect(log.addOlder(range(0, 50).map((i) => userMessage(i, "m")), false)).toBe(50);
    expect(ids(log.events)).toEqual(range(0, 300));
    expect(log.hasOlder).toBe(false);
  });

  it("an older page with a hole makes the hole a gap to back-fill", () => {
    const log = new EventLog();
    log.startWindow(range(10, 20).map((i) => userMessage(i, "m")), true);
    log.addOlder([userMessage(9, "m"), userMessage(7, "m"), userMessage(5, "m")], true);
    expect(log.floor).toBe(5);
    expect(log.missingIds()).toEqual([6, 8]);
  });

  it("refuses single events below the window (only whole older pages extend it)", () => {
    const log = new EventLog();
    log.startWindow(range(10, 20).map((i) => userMessage(i, "m")), true);
    expect(log.add(userMessage(3, "stray"))).toBe("duplicate");
    expect(log.floor).toBe(10);
    expect(log.missingIds()).toEqual([]);
  });

  it("ignores garbage and events above the floor in an older page", () => {
    const log = new EventLog();
    log.startWindow(range(10, 20).map((i) => userMessage(i, "m")), true);
    const before = log.get(15);
    expect(log.addOlder([null, "x", { id: "7" }, { ...userMessage(15, "forged") }, userMessage(9, "m")], true)).toBe(1);
    expect(log.get(15)).toBe(before);
    expect(ids(log.events)).toEqual(range(9, 20));
  });

  it("an older agent state counts only until the window holds a newer one", () => {
    const log = new EventLog();
    log.startWindow([userMessage(50, "m")], true);
    log.noteOlderState(7, "running", "");
    expect(log.agentState).toBe("running");
    log.add(stateChanged(51, "awaiting_user_input"));
    log.noteOlderState(7, "running", "");
    expect(log.agentState).toBe("awaiting_user_input");
  });
});

describe("OlderScan", () => {
  it("stops at the first page that gives every missing fact", () => {
    const scan = new OlderScan(300, { state: false, taskList: false, metrics: true, agentSpoke: true });
    scan.take(range(200, 300).map((i) => userMessage(i, "m")), true);
    expect(scan.done).toBe(false);
    expect(scan.cursor).toBe(200);
    scan.take([stateChanged(150, "running"), taskTracking(120, [{ id: "1", title: "t", status: "todo" }]), taskTracking(110, [])], true);
    expect(scan.done).toBe(true);
    expect(scan.state?.state).toBe("running");
    expect((scan.taskList as any[])[0].title).toBe("t");
  });

  it("is done at id 0 even when a fact never occurs", () => {
    const scan = new OlderScan(3, { state: true, taskList: false, metrics: true, agentSpoke: true });
    scan.take([userMessage(2, "a"), userMessage(1, "b"), userMessage(0, "c")], false);
    expect(scan.done).toBe(true);
    expect(scan.taskList).toBeNull();
  });
});

describe("ConversationSession on a 10,000-event conversation", () => {
  it("opens with one page of the newest events and resumes the socket after them", async () => {
    const stored = longConversation(10_000);
    const { s, server, sockets } = await open(stored);
    expect(server.calls[0]).toEqual({ start: 0, end: undefined, limit: 100, reverse: true });
    expect(ids(s.log.events)).toEqual(range(9900, 10_000));
    expect(sockets[0].opts.query.latest_event_id).toBe("9999");
  });

  it("fills in agent state, task list and metrics from below the window without holding those events", async () => {
    const stored = longConversation(10_000);
    const { s } = await open(stored);
    await vi.waitFor(() => expect(s.older?.done).toBe(true));
    expect(s.log.size).toBe(100);
    expect(s.log.agentState).toBe("awaiting_user_input");
    const d = derive(s.log, s.older);
    expect(d.taskList?.[0].title).toBe("read the code");
    expect(d.metrics?.accumulated_cost).toBe(0.0123);
    expect(s.older?.agentSpoke).toBe(true);
  });

  it("loads older pages on demand down to id 0: every id once, also with live events in between", async () => {
    const stored = longConversation(10_000);
    const { s, sockets } = await open(stored);
    let live = 10_000;
    while (s.log.hasOlder) {
      // Two loads at once fetch one page.
      const [a, b] = await Promise.all([s.loadOlder(), s.loadOlder()]);
      expect(a + b).toBeLessThanOrEqual(100);
      sockets[0].fire("oh_event", userMessage(live, "live"));
      sockets[0].fire("oh_event", userMessage(live, "live")); // a replayed duplicate
      live++;
    }
    expect(ids(s.log.events)).toEqual(range(0, live));
    expect(s.log.missingIds()).toEqual([]);
  });

  it("pages cut short by size still join up", async () => {
    const stored = longConversation(1_000);
    const { s } = await open(stored, { maxPerPage: 7 });
    expect(s.log.size).toBe(7);
    while (s.log.hasOlder) await s.loadOlder();
    expect(ids(s.log.events)).toEqual(range(0, 1_000));
  });

  it("an id the server skipped in an older page is back-filled, not left as a hole", async () => {
    const stored = longConversation(300);
    const drop = new Set([150]);
    const { s, server } = await open(stored, { drop });
    await s.loadOlder();
    expect(s.log.missingIds()).toEqual([150]);
    drop.clear();
    await vi.waitFor(() => expect(s.log.missingIds()).toEqual([]));
    expect(server.calls.some((c) => c.start === 150 && c.end === 150)).toBe(true);
    while (s.log.hasOlder) await s.loadOlder();
    expect(ids(s.log.events)).toEqual(range(0, 300));
  });

  it("a failing older page is reported and can be retried", async () => {
    const stored = longConversation(500);
    const { s, server } = await open(stored);
    server.events.mockRejectedValueOnce(new Error("boom"));
    expect(await s.loadOlder()).toBe(0);
    expect(s.notices.at(-1)?.text).toMatch(/earlier events.*boom/);
    expect(s.loadingOlder).toBe(false);
    expect(await s.loadOlder()).toBe(100);
    expect(s.log.floor).toBe(300);
  });

  it("a short conversation opens whole, with nothing older to load", async () => {
    const stored = [stateChanged(0, "loading"), runAction(1, "ls"), runObs(2, 1, "a")];
    const { s, sockets } = await open(stored);
    expect(ids(s.log.events)).toEqual([0, 1, 2]);
    expect(s.log.hasOlder).toBe(false);
    expect(await s.loadOlder()).toBe(0);
    expect(sockets[0].opts.query.latest_event_id).toBe("2");
  });
});
