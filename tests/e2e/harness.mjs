// Harness for the browser end-to-end tests: the real openhands-server binary serving the
// built UI (frontend/dist) on an ephemeral port, and Debian's Chromium driven by
// playwright-core with a fresh profile.
//
// Binary: $OPENHANDS_BIN, else <repo>/target/debug/openhands-server.
// Browser: $CHROMIUM_PATH, else /usr/bin/chromium.

import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "..", "..");
export const FRONTEND = path.join(REPO, "frontend");
export const DIST = path.join(FRONTEND, "dist");
export const ARTIFACTS = path.join(HERE, "artifacts");
export const BIN = process.env.OPENHANDS_BIN
  ? path.resolve(process.env.OPENHANDS_BIN)
  : path.join(REPO, "target", "debug", "openhands-server");
export const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

// Variables that would change the server's behaviour; removed unless a test sets them.
const SCRUBBED_ENV = [
  "SESSION_API_KEY",
  "LLM_API_KEY",
  "LLM_MODEL",
  "LLM_BASE_URL",
  "WORKSPACE_BASE",
  "SANDBOX_VOLUMES",
  "SECURITY_CONFIRMATION_MODE",
  "MAX_ITERATIONS",
  "OPENHANDS_FRONTEND_DIR",
];

const cleanups = [];
process.on("exit", () => {
  for (const fn of cleanups.reverse()) {
    try {
      fn();
    } catch {}
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function tempDir(prefix = "ohs-e2e-") {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Builds frontend/dist if it is missing (needs frontend/node_modules). */
export function ensureFrontendBuilt() {
  if (fs.existsSync(path.join(DIST, "index.html"))) return;
  execFileSync("npm", ["run", "build"], { cwd: FRONTEND, stdio: "inherit" });
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts the server serving the built UI.
 * opts.env: extra environment; opts.storeDir: reuse a store; opts.port: fixed port (default 0).
 */
export async function startServer(opts = {}) {
  if (!fs.existsSync(BIN)) throw new Error(`server binary not found: ${BIN} (build it, or set OPENHANDS_BIN)`);
  ensureFrontendBuilt();
  const dir = opts.dir ?? tempDir();
  const storeDir = opts.storeDir ?? path.join(dir, "store");
  const env = { ...process.env };
  for (const k of SCRUBBED_ENV) delete env[k];
  env.FILE_STORE_PATH = storeDir;
  env.OPENHANDS_FRONTEND_DIR = DIST;
  Object.assign(env, opts.env ?? {});

  const proc = spawn(BIN, ["--host", "127.0.0.1", "--port", String(opts.port ?? 0)], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  cleanups.push(() => proc.exitCode === null && proc.kill("SIGKILL"));
  let stdout = "";
  let stderr = "";
  proc.stderr.setEncoding("utf8");
  proc.stderr.on("data", (c) => {
    stderr = (stderr + c).slice(-200_000);
  });
  const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 15 s\n${stdout}\n${stderr}`)), 15_000);
    proc.stdout.setEncoding("utf8");
    proc.stdout.on("data", (c) => {
      stdout += c;
      const m = /listening on http:\/\/[\d.]+:(\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening\n${stdout}\n${stderr}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async (signal = "SIGTERM") => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
    const r = await exited;
    clearTimeout(t);
    return r;
  };
  return { url, port, dir, storeDir, proc, stop, logs: () => ({ stdout, stderr }) };
}

/** Chromium with a fresh profile; returns { context, close }. */
export async function launchBrowser({ width = 1400, height = 900 } = {}) {
  const profile = tempDir("ohs-e2e-profile-");
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width, height },
    acceptDownloads: true,
    timeout: 60_000,
  });
  context.setDefaultTimeout(15_000);
  cleanups.push(() => {
    try {
      context.browser()?.process?.()?.kill("SIGKILL");
    } catch {}
  });
  return { context, close: () => context.close() };
}

/** Collects page errors and console errors, to fail on unexpected ones. */
export function watchPage(page) {
  const errors = [];
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("console", (m) => {
    // Failed requests (an expected 404 after a delete) are the tests' business, not page errors.
    if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) errors.push(`console: ${m.text()}`);
  });
  return errors;
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  return file;
}

// ---------------------------------------------------------------------------
// REST helpers

export async function api(base, method, route, body) {
  const res = await fetch(base + route, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch {}
  return { status: res.status, data };
}

/** Every stored event of a conversation, via GET …/events (paged). */
export async function allEvents(base, cid) {
  const out = [];
  let start = 0;
  for (;;) {
    const { status, data } = await api(base, "GET", `/api/conversations/${cid}/events?start_id=${start}&limit=100`);
    if (status !== 200) throw new Error(`GET events: ${status} ${JSON.stringify(data)}`);
    out.push(...data.events);
    if (!data.has_more || !data.events.length) return out;
    start = data.events[data.events.length - 1].id + 1;
  }
}

/**
 * The event ids the chat holds: every element carries the ids it shows in data-eids; the
 * virtualised list's spacers stand for the items out of view with data-eid-runs ("0-97 99").
 */
export async function renderedIds(page) {
  return page.$$eval("[data-testid=chat] [data-eids], [data-testid=chat] [data-eid-runs]", (els) =>
    els.flatMap((el) => {
      if (el.hasAttribute("data-eids")) return el.getAttribute("data-eids").split(" ").filter(Boolean).map(Number);
      return el
        .getAttribute("data-eid-runs")
        .split(" ")
        .filter(Boolean)
        .flatMap((run) => {
          const [a, b = a] = run.split("-").map(Number);
          return Array.from({ length: b - a + 1 }, (_, i) => a + i);
        });
    }),
  );
}

/** The event ids of the items actually in the DOM (not the spacers'). */
export async function domIds(page) {
  return page.$$eval("[data-testid=chat] [data-eids]", (els) =>
    els.flatMap((el) => el.getAttribute("data-eids").split(" ").filter(Boolean).map(Number)),
  );
}

/** Waits until cond() (async) is truthy; throws with the label after timeoutMs. */
export async function eventually(cond, { timeout = 10_000, interval = 100, label = "condition" } = {}) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await cond();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${label} (last: ${last})`);
    await sleep(interval);
  }
}

export function conversationIdFromUrl(url) {
  const m = /\/conversations\/([^/?#]+)/.exec(url);
  return m ? m[1] : null;
}
