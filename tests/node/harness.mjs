// Test harness for the openhands-server Node.js integration tests.
//
// Starts the real binary on an ephemeral port in a fresh temp dir and talks to it with
// the real socket.io-client (the library the OpenHands web UI uses).
//
// Binary: $OPENHANDS_BIN, else <repo>/target/debug/openhands-server.

import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { io } from "socket.io-client";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "..", "..");
export const BIN = process.env.OPENHANDS_BIN
  ? path.resolve(process.env.OPENHANDS_BIN)
  : path.join(REPO, "target", "debug", "openhands-server");

/** Stored event timestamp: naive local ISO time with microseconds. */
export const TIMESTAMP_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/;
const LISTEN_RE = /listening on http:\/\/([\d.]+):(\d+)/;

// Variables that would change the server's behaviour; removed unless a test sets them.
const SCRUBBED_ENV = [
  "SESSION_API_KEY",
  "LLM_API_KEY",
  "LLM_MODEL",
  "LLM_BASE_URL",
  "WORKSPACE_BASE",
  "SANDBOX_VOLUMES",
];

const liveProcs = new Set();
const tempDirs = new Set();
const liveSockets = new Set();

process.on("exit", () => {
  for (const p of liveProcs) {
    try {
      p.kill("SIGKILL");
    } catch {}
  }
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {}
  }
});

export function newConversationId() {
  return crypto.randomUUID().replaceAll("-", "");
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function tail(s, n = 4000) {
  return s.length > n ? "…" + s.slice(-n) : s;
}

/**
 * Start the server.
 * @param {Record<string,string>} extraEnv  extra environment (e.g. SESSION_API_KEY)
 * @param {{storeDir?: string}} opts        reuse an existing FILE_STORE_PATH
 * @returns {Promise<{url:string, port:number, proc:any, dir:string, storeDir:string,
 *   stop:()=>Promise<any>, kill:(sig?:string)=>Promise<any>, output:()=>{stdout:string,stderr:string},
 *   exited:Promise<{code:number|null, signal:string|null}>}>}
 */
export async function startServer(extraEnv = {}, opts = {}) {
  if (!fs.existsSync(BIN)) {
    throw new Error(`server binary not found: ${BIN} (build it, or set OPENHANDS_BIN)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ohs-node-test-"));
  tempDirs.add(dir);
  const storeDir = opts.storeDir ?? path.join(dir, "store");

  const env = { ...process.env };
  for (const k of SCRUBBED_ENV) delete env[k];
  env.FILE_STORE_PATH = storeDir;
  Object.assign(env, extraEnv);

  const proc = spawn(BIN, ["--host", "127.0.0.1", "--port", "0"], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  liveProcs.add(proc);

  let stdout = "";
  let stderr = "";
  const cap = (s) => (s.length > 1_000_000 ? s.slice(-500_000) : s);
  const exited = new Promise((resolve) => {
    proc.once("exit", (code, signal) => {
      liveProcs.delete(proc);
      resolve({ code, signal });
    });
  });

  const started = new Promise((resolve, reject) => {
    let done = false;
    const finish = (fn, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      fn(v);
    };
    const timer = setTimeout(() => {
      try {
        proc.kill("SIGKILL");
      } catch {}
      finish(
        reject,
        new Error(
          `server did not print "listening on http://HOST:PORT" within 10 s\n` +
            `stdout:\n${tail(stdout)}\nstderr:\n${tail(stderr)}`,
        ),
      );
    }, 10_000);
    proc.stdout.setEncoding("utf8");
    proc.stderr.setEncoding("utf8");
    proc.stdout.on("data", (chunk) => {
      stdout = cap(stdout + chunk);
      const m = LISTEN_RE.exec(stdout);
      if (m) finish(resolve, { host: m[1], port: Number(m[2]) });
    });
    proc.stderr.on("data", (chunk) => {
      stderr = cap(stderr + chunk);
    });
    proc.once("error", (err) => finish(reject, new Error(`failed to spawn ${BIN}: ${err.message}`)));
    proc.once("exit", (code, signal) =>
      finish(
        reject,
        new Error(
          `server exited before listening (code ${code}, signal ${signal})\n` +
            `stdout:\n${tail(stdout)}\nstderr:\n${tail(stderr)}`,
        ),
      ),
    );
  });

  const { host, port } = await started;

  async function signalAndWait(sig, graceMs) {
    if (proc.exitCode !== null || proc.signalCode !== null) return exited;
    try {
      proc.kill(sig);
    } catch {}
    let t;
    const res = await Promise.race([exited, new Promise((r) => (t = setTimeout(() => r(null), graceMs)))]);
    clearTimeout(t);
    if (res) return res;
    try {
      proc.kill("SIGKILL");
    } catch {}
    return exited;
  }

  return {
    url: `http://${host}:${port}`,
    port,
    proc,
    dir,
    storeDir,
    exited,
    output: () => ({ stdout, stderr }),
    /** SIGTERM, wait for exit (SIGKILL after 10 s). */
    stop: () => signalAndWait("SIGTERM", 10_000),
    /** SIGKILL (or another signal) and wait for exit. */
    kill: (sig = "SIGKILL") => signalAndWait(sig, 10_000),
  };
}

// ---------------------------------------------------------------------------
// Socket.IO client helpers

/**
 * Attach a recorder to a socket: every `oh_event` payload is pushed to
 * `socket.ohEvents` in arrival order, and every event of any name to `socket.frames`. Attached synchronously at creation, so replayed
 * events are never missed.
 */
function record(socket) {
  socket.ohEvents = [];
  socket._waiters = new Set();
  socket.on("oh_event", (...args) => {
    socket.ohEvents.push(args.length === 1 ? args[0] : args);
    for (const w of [...socket._waiters]) w();
  });
  socket.on("disconnect", () => {
    for (const w of [...socket._waiters]) w();
  });
  // Every event of any name, in arrival order ([name, payload]): oh_event and oh_output.
  socket.frames = [];
  socket.onAny((name, ...args) => {
    socket.frames.push([name, args.length === 1 ? args[0] : args]);
    if (name !== "oh_event") for (const w of [...socket._waiters]) w();
  });
  return socket;
}

function makeSocket(url, query, opts) {
  const socket = io(url, {
    path: "/socket.io/",
    query,
    forceNew: true,
    reconnection: false,
    ...opts,
  });
  liveSockets.add(socket);
  record(socket);
  // First transport the engine opened with (to check polling -> websocket upgrades).
  socket.io.on("open", () => {
    if (socket.initialTransport === undefined) {
      socket.initialTransport = socket.io.engine?.transport?.name;
    }
  });
  return socket;
}

/**
 * Connect and resolve with the connected socket; reject with the `connect_error` error
 * (err.message / err.data) or on timeout.
 * opts: socket.io-client options plus `connectTimeout` (ms, default 5000).
 */
export function connect(url, query = {}, opts = {}) {
  const { connectTimeout = 5000, ...ioOpts } = opts;
  const socket = makeSocket(url, query, ioOpts);
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
    };
    const onConnect = () => {
      cleanup();
      resolve(socket);
    };
    const onError = (err) => {
      cleanup();
      socket.close();
      liveSockets.delete(socket);
      reject(err);
    };
    const timer = setTimeout(() => {
      cleanup();
      socket.close();
      liveSockets.delete(socket);
      const e = new Error(`socket.io connect timed out after ${connectTimeout} ms`);
      e.isTimeout = true;
      reject(e);
    }, connectTimeout);
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

/**
 * How many events every new conversation stores as it opens: agent_state_changed
 * loading, the environment's change_agent_state, agent_state_changed awaiting_user_input.
 * A message sent once the agent is ready gets this id.
 */
export const STARTUP_EVENTS = 3;

/** An event that only records the agent's state (stored as every conversation opens). */
export function isAgentStateEvent(e) {
  return e?.observation === "agent_state_changed" || (e?.action === "change_agent_state" && e?.source === "environment");
}

/**
 * Connect, then wait until the agent says it is ready (awaiting_user_input), as the
 * OpenHands UI does before it enables its input.
 */
export async function connectReady(url, query = {}, opts = {}) {
  const socket = await connect(url, query, opts);
  await waitFor(
    socket,
    (e) => e?.observation === "agent_state_changed" && e.extras?.agent_state === "awaiting_user_input",
    { label: "the agent ready for input" },
  );
  return socket;
}

/**
 * Expect the connection to be refused: resolve with the connect_error error; reject if
 * the socket connects or nothing happens within `connectTimeout` ms (default 5000).
 */
export async function connectError(url, query = {}, opts = {}) {
  let sock;
  try {
    sock = await connect(url, query, opts);
  } catch (err) {
    if (err.isTimeout) {
      throw new Error(`expected connect_error, but got no answer: ${err.message}`);
    }
    return err;
  }
  sock.close();
  throw new Error("expected connect_error, but the socket connected");
}

/** Close every socket opened through this harness. */
export function closeSockets() {
  for (const s of liveSockets) {
    try {
      s.io.opts.reconnection = false;
      s.io.reconnection(false);
      s.close();
    } catch {}
  }
  liveSockets.clear();
}

function describeEvents(events, n = 8) {
  const last = events.slice(-n).map((e) => {
    const s = JSON.stringify(e);
    return s && s.length > 200 ? s.slice(0, 200) + "…" : s;
  });
  return `${events.length} oh_event(s) so far; last ${last.length}:\n  ${last.join("\n  ")}`;
}

/**
 * Wait until cond() is true; re-evaluated on every oh_event of the socket(s) and every
 * 50 ms. Rejects after timeoutMs with a description.
 */
export function waitUntil(sockets, cond, timeoutMs = 5000, label = "condition") {
  const list = Array.isArray(sockets) ? sockets : [sockets];
  return new Promise((resolve, reject) => {
    let done = false;
    const check = () => {
      if (done) return;
      let v;
      try {
        v = cond();
      } catch (e) {
        finish();
        reject(e);
        return;
      }
      if (v) {
        finish();
        resolve(v);
      }
    };
    const finish = () => {
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      for (const s of list) s._waiters.delete(check);
    };
    const timer = setTimeout(() => {
      if (done) return;
      finish();
      const detail = list.map((s, i) => `socket ${i}: ${describeEvents(s.ohEvents)}`).join("\n");
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label}\n${detail}`));
    }, timeoutMs);
    const poll = setInterval(check, 50);
    for (const s of list) s._waiters.add(check);
    check();
  });
}

/**
 * Resolve with the first oh_event payload (at index >= from) matching pred.
 */
export async function waitFor(socket, pred, { timeout = 5000, from = 0, label = "a matching oh_event" } = {}) {
  let found;
  await waitUntil(
    socket,
    () => {
      for (let i = from; i < socket.ohEvents.length; i++) {
        if (pred(socket.ohEvents[i])) {
          found = socket.ohEvents[i];
          return true;
        }
      }
      return false;
    },
    timeout,
    label,
  );
  return found;
}

/** Resolve with the first n oh_event payloads received by the socket. */
export async function collect(socket, n, timeoutMs = 5000) {
  await waitUntil(socket, () => socket.ohEvents.length >= n, timeoutMs, `${n} oh_event payloads`);
  return socket.ohEvents.slice(0, n);
}

/** Wait until the socket has received no oh_event for quietMs (at most maxMs in total). */
export async function settle(socket, quietMs = 300, maxMs = 3000) {
  const list = Array.isArray(socket) ? socket : [socket];
  const count = () => list.reduce((a, s) => a + s.ohEvents.length, 0);
  const start = Date.now();
  let last = count();
  let lastChange = Date.now();
  while (Date.now() - start < maxMs) {
    await sleep(25);
    const c = count();
    if (c !== last) {
      last = c;
      lastChange = Date.now();
    } else if (Date.now() - lastChange >= quietMs) {
      return;
    }
  }
}

// ---------------------------------------------------------------------------
// Event helpers

/** Stored events (integer id) among the socket's oh_event payloads. */
export function storedEvents(socketOrEvents) {
  const evs = Array.isArray(socketOrEvents) ? socketOrEvents : socketOrEvents.ohEvents;
  return evs.filter((e) => e && typeof e === "object" && !Array.isArray(e) && Number.isInteger(e.id));
}

export function ids(events) {
  return events.map((e) => e.id);
}

export function lastId(socket) {
  const st = storedEvents(socket);
  return st.length ? st[st.length - 1].id : -1;
}

export function isUserMessage(e, content) {
  return (
    e &&
    typeof e === "object" &&
    e.action === "message" &&
    e.source === "user" &&
    e.args &&
    (content === undefined || e.args.content === content)
  );
}

export function isErrorPayload(e) {
  return e && typeof e === "object" && !Array.isArray(e) && e.error === true;
}

/** Wait for the stored user message with the given content; returns it. */
export function waitForMessage(socket, content, timeout = 5000) {
  return waitFor(socket, (e) => isUserMessage(e, content) && Number.isInteger(e.id), {
    timeout,
    label: `user message ${JSON.stringify(content.length > 60 ? content.slice(0, 60) + "…" : content)}`,
  });
}

/** [a, a+1, ..., b] */
export function range(a, b) {
  const out = [];
  for (let i = a; i <= b; i++) out.push(i);
  return out;
}

/** Send a user message in the OpenHands shape on oh_user_action. */
export function sendMessage(socket, content, event = "oh_user_action") {
  socket.emit(event, { action: "message", args: { content } });
}

// ---------------------------------------------------------------------------
// REST helper

/** HTTP request; resolves with {status, headers, text, json} (json undefined if not JSON). */
export async function http(method, url, { body, headers = {}, timeout = 10_000 } = {}) {
  const init = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeout) };
  if (body !== undefined) {
    init.headers["content-type"] ??= "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, headers: res.headers, text, json };
}
