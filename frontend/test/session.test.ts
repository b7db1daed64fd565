import { describe, expect, it, vi } from "vitest";
import type { KV } from "../src/lib/cache";
import { ConversationSession } from "../src/lib/session";
import { runAction, runObs, stateChanged, userMessage } from "./fixtures";

/** A socket.io-client stand-in: records handlers and emits, lets the test fire events. */
function fakeIo() {
  const sockets: any[] = [];
  const io = vi.fn((_uri: string, opts: any) => {
    const handlers = new Map<string, Function[]>();
    const mgrHandlers = new Map<string, Function[]>();
    const socket: any = {
      connected: false,
      active: true,
      emitted: [] as any[],
      opts,
      io: {
        opts: { query: opts.query },
        on: (ev: string, fn: Function) => mgrHandlers.set(ev, [...(mgrHandlers.get(ev) ?? []), fn]),
        removeAllListeners: () => mgrHandlers.clear(),
      },
      on: (ev: string, fn: Function) => handlers.set(ev, [...(handlers.get(ev) ?? []), fn]),
      emit: (ev: string, payload: unknown) => socket.emitted.push([ev, payload]),
      timeout: (_ms: number) => ({
        emit: (ev: string, payload: unknown, ack: Function) => socket.emitted.push([ev, payload, ack]),
      }),
      removeAllListeners: () => handlers.clear(),
      disconnect: () => {
        socket.connected = false;
      },
      connect: () => {
        socket.connectCalls = (socket.connectCalls ?? 0) + 1;
      },
      fire: (ev: string, ...args: unknown[]) => {
        if (ev === "connect") socket.connected = true;
        if (ev === "disconnect") socket.connected = false;
        for (const fn of handlers.get(ev) ?? []) fn(...args);
      },
      fireManager: (ev: string, ...args: unknown[]) => {
        for (const fn of mgrHandlers.get(ev) ?? []) fn(...args);
      },
    };
    sockets.push(socket);
    return socket;
  });
  return { io, sockets };
}

function memoryKv(): KV & { data: Map<string, string> } {
  const data = new Map<string, string>();
  return { data, getItem: (k) => data.get(k) ?? null, setItem: (k, v) => void data.set(k, v), removeItem: (k) => void data.delete(k) };
}

function fakeApi(overrides: Record<string, any> = {}) {
  return {
    getConversation: vi.fn(async (id: string) => ({ conversation_id: id, title: "T", status: "RUNNING", session_api_key: null })),
    startConversation: vi.fn(async () => ({ status: "ok" })),
    events: vi.fn(async () => ({ events: [], has_more: false })),
    ...overrides,
  };
}

async function openSession(opts: { api?: any; kv?: KV | null } = {}) {
  const { io, sockets } = fakeIo();
  const api = opts.api ?? fakeApi();
  const s = new ConversationSession("abc", { io: io as any, api, kv: opts.kv ?? null, origin: "http://x", backfillDelayMs: 0 });
  await s.open();
  return { s, io, sockets, api };
}

describe("ConversationSession", () => {
  it("connects with the conversation id and latest_event_id=-1, and sends oh_user_action", async () => {
    const { s, sockets } = await openSession();
    const sock = sockets[0];
    expect(sock.opts.path).toBe("/socket.io");
    expect(sock.opts.query).toMatchObject({ conversation_id: "abc", latest_event_id: "-1" });
    sock.fire("connect");
    expect(s.conn).toBe("connected");
    s.sendMessage("hello");
    s.runCommand("ls");
    s.setAgentState("stopped");
    expect(sock.emitted.map((e: any) => e[0])).toEqual(["oh_user_action", "oh_user_action", "oh_user_action"]);
    expect(sock.emitted[0][1]).toMatchObject({ action: "message", args: { content: "hello" } });
    expect(sock.emitted[1][1]).toEqual({ action: "run", args: { command: "ls", hidden: false } });
    expect(sock.emitted[2][1]).toEqual({ action: "change_agent_state", args: { agent_state: "stopped" } });
  });

  it("sends every message with a client id and again after a reconnect until it is acknowledged", async () => {
    const { s, sockets } = await openSession();
    const sock = sockets[0];
    s.sendMessage("offline first");
    expect(sock.emitted).toEqual([]);
    expect(s.outbox.map((m) => m.text)).toEqual(["offline first"]);
    sock.fire("connect");
    s.sendMessage("second");
    const [first, second] = sock.emitted;
    const id1 = first[1].args.client_message_id;
    expect(typeof id1).toBe("string");
    expect(second[1].args.client_message_id).not.toBe(id1);
    second[2](null, { event_id: 7 });
    expect(s.outbox.map((m) => m.text)).toEqual(["offline first"]);
    sock.fire("disconnect", "transport close");
    sock.fire("connect");
    const resent = sock.emitted.slice(2);
    expect(resent.map((e: any) => e[1].args.client_message_id)).toEqual([id1]);
    resent[0][2](null, { event_id: 6 });
    expect(s.outbox).toEqual([]);
  });

  it("interrupt-and-send stops the agent, then sends the message", async () => {
    const { s, sockets } = await openSession();
    const sock = sockets[0];
    sock.fire("connect");
    s.interruptAndSend("instead");
    expect(sock.emitted.map((e: any) => e[1].action)).toEqual(["change_agent_state", "message"]);
    expect(sock.emitted[0][1].args).toEqual({ agent_state: "stopped" });
    expect(sock.emitted[1][1].args.content).toBe("instead");
  });

  it("resumes every reconnect after the last event received, and drops replayed duplicates", async () => {
    const { s, sockets } = await openSession();
    const sock = sockets[0];
    sock.fire("connect");
    for (const e of [userMessage(0, "a"), runAction(1, "ls"), runObs(2, 1, "x")]) sock.fire("oh_event", e);
    sock.fire("disconnect", "transport close");
    expect(s.conn).toBe("reconnecting");
    expect(sock.io.opts.query.latest_event_id).toBe("2");
    sock.fireManager("reconnect_attempt", 1);
    expect(sock.io.opts.query.latest_event_id).toBe("2");
    sock.fire("connect");
    // A server that replays too much: nothing shows twice.
    for (const e of [runObs(2, 1, "x"), userMessage(3, "b")]) sock.fire("oh_event", e);
    expect(s.log.events.map((e) => e.id)).toEqual([0, 1, 2, 3]);
    expect(s.connects).toBe(2);
  });

  it("status updates set the title and the status; error notices become notices", async () => {
    const { s, sockets } = await openSession();
    const sock = sockets[0];
    sock.fire("oh_event", { status_update: true, type: "info", message: "abc", conversation_title: "New title" });
    expect(s.title).toBe("New title");
    sock.fire("oh_event", { status_update: true, type: "info", id: "STATUS$READY", message: "STATUS$READY" });
    expect(s.status).toBe("Ready");
    sock.fire("oh_event", { status_update: true, type: "error", id: "STATUS$ERROR_LLM_AUTHENTICATION", message: "Bad key" });
    expect(s.errorStatus).toBe("Bad key");
    sock.fire("oh_event", { error: true, message: "Invalid action" });
    expect(s.notices.at(-1)?.text).toBe("Invalid action");
    expect(s.log.size).toBe(0);
    // A newer state clears the error status.
    sock.fire("oh_event", stateChanged(0, "running"));
    expect(s.errorStatus).toBe("");
  });

  it("on a server close: the id-less stopped state applies, and the session stays closed while the server answers", async () => {
    const { s, sockets, api } = await openSession();
    const sock = sockets[0];
    sock.fire("connect");
    sock.fire("oh_event", stateChanged(0, "running"));
    sock.fire("oh_event", { observation: "agent_state_changed", source: "agent", content: "", extras: { agent_state: "stopped", reason: "" } });
    expect(s.log.agentState).toBe("stopped");
    expect(s.log.size).toBe(1);
    sock.fire("disconnect", "io server disconnect");
    expect(s.conn).toBe("closed");
    await vi.waitFor(() => expect(api.getConversation).toHaveBeenCalledTimes(2));
    expect(s.conn).toBe("closed");
    await s.reconnect();
    expect(sock.connectCalls).toBe(1);
  });

  it("on a server close while the server is down: waits for it, then resumes by itself", async () => {
    let down = true;
    const api = fakeApi({
      getConversation: vi.fn(async (id: string) => {
        if (down) throw new TypeError("Failed to fetch");
        return { conversation_id: id, title: "T", status: "STOPPED" };
      }),
    });
    const { io, sockets } = fakeIo();
    down = false;
    const s = new ConversationSession("abc", { io: io as any, api, kv: null, origin: "http://x" });
    await s.open();
    const sock = sockets[0];
    sock.fire("connect");
    down = true;
    sock.fire("disconnect", "io server disconnect");
    await vi.waitFor(() => expect(s.conn).toBe("reconnecting"));
    down = false;
    await vi.waitFor(() => expect(sock.connectCalls).toBe(1), { timeout: 3000 });
    expect(api.startConversation).toHaveBeenCalled(); // it was STOPPED: resumed first
  });

  it("back-fills ids that never arrived over REST", async () => {
    const api = fakeApi({
      events: vi.fn(async (_id: string, start: number, end: number) => ({
        events: [userMessage(1, "b"), userMessage(2, "c")].filter((e) => e.id >= start && e.id <= end),
        has_more: false,
      })),
    });
    const { s, sockets } = await openSession({ api });
    const sock = sockets[0];
    sock.fire("oh_event", userMessage(0, "a"));
    sock.fire("oh_event", userMessage(3, "d"));
    await vi.waitFor(() => expect(s.log.events.map((e) => e.id)).toEqual([0, 1, 2, 3]));
    expect(api.events).toHaveBeenCalledWith("abc", 1, 2, 2);
  });

  it("a reload resumes from the cached events when the server still has the last one", async () => {
    const kv = memoryKv();
    const cached = [userMessage(0, "a"), runAction(1, "ls"), runObs(2, 1, "x")];
    kv.setItem("openhands:events:abc", JSON.stringify(cached));
    const api = fakeApi({ events: vi.fn(async () => ({ events: [cached[2]], has_more: false })) });
    const { s, sockets } = await openSession({ api, kv });
    expect(api.events).toHaveBeenCalledWith("abc", 2, 2, 1);
    expect(s.log.size).toBe(3);
    expect(sockets[0].opts.query.latest_event_id).toBe("2");
  });

  it("a stale cache (the server's event differs) is dropped and the server's newest page is taken instead", async () => {
    const kv = memoryKv();
    kv.setItem("openhands:events:abc", JSON.stringify([userMessage(0, "a"), userMessage(1, "old")]));
    const other = { ...userMessage(1, "new"), timestamp: "2030-01-01T00:00:00.000000" };
    const api = fakeApi({ events: vi.fn(async () => ({ events: [other], has_more: false })) });
    const { s, sockets } = await openSession({ api, kv });
    expect(kv.getItem("openhands:events:abc")).toBeNull();
    expect(s.log.events.map((e) => e.message)).toEqual(["new"]);
    expect(sockets[0].opts.query.latest_event_id).toBe("1");
  });

  it("saves received events for the next reload", async () => {
    const kv = memoryKv();
    const { s, sockets } = await openSession({ kv });
    sockets[0].fire("oh_event", userMessage(0, "a"));
    s.saveNow();
    expect(JSON.parse(kv.getItem("openhands:events:abc")!)).toHaveLength(1);
  });

  it("an unknown conversation is reported, not connected", async () => {
    const api = fakeApi({ getConversation: vi.fn(async () => Promise.reject(Object.assign(new Error("nf"), { status: 404 }))) });
    const { s, sockets } = await openSession({ api });
    expect(s.notFound).toBe(true);
    expect(sockets).toHaveLength(0);
  });

  it("a stopped conversation is started before connecting", async () => {
    const api = fakeApi({ getConversation: vi.fn(async (id: string) => ({ conversation_id: id, title: "T", status: "STOPPED" })) });
    const { sockets } = await openSession({ api });
    expect(api.startConversation).toHaveBeenCalledWith("abc");
    expect(sockets).toHaveLength(1);
  });
});
