// start_openhands.sh (seed 002): the backend and the Vite dev server come up on the seed's
// addresses (0.0.0.0), so a session key is made up and printed in the URLs; the seed's curl
// checks pass, nobody gets in without the key (directly or through the dev server's
// proxy), the UI opened with the printed URL works through the dev server's /api and
// /socket.io (WebSocket) proxy, and Ctrl-C stops both. The test hands the script the already-built debug binary
// (BACKEND_BIN) instead of letting it run `cargo build --release`.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { after, test } from "node:test";
import { BIN, REPO, ensureFrontendBuilt, freePort, launchBrowser, screenshot, sleep, tempDir } from "./harness.mjs";

let proc;
let browser;

after(async () => {
  await browser?.close();
  if (proc && proc.exitCode === null) proc.kill("SIGKILL");
});

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

test("start_openhands.sh serves the backend and the Vite dev server behind a key, proxies the socket, and stops on Ctrl-C", async () => {
  ensureFrontendBuilt();
  const backendPort = await freePort();
  const frontendPort = await freePort();
  const store = tempDir();
  const env = { ...process.env };
  for (const k of ["LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL", "SESSION_API_KEY", "VITE_BACKEND_HOST", "BACKEND_HOST", "FRONTEND_HOST", "CORS_ALLOWED_ORIGINS", "OPENHANDS_NO_AUTH"]) delete env[k];
  Object.assign(env, {
    BACKEND_BIN: BIN,
    SKIP_BUILD: "1",
    BACKEND_PORT: String(backendPort),
    VITE_FRONTEND_PORT: String(frontendPort),
    FILE_STORE_PATH: path.join(store, "store"),
  });
  proc = spawn("bash", [path.join(REPO, "start_openhands.sh")], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.setEncoding("utf8");
  proc.stderr.setEncoding("utf8");
  proc.stdout.on("data", (c) => (out += c));
  proc.stderr.on("data", (c) => (out += c));
  const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));

  const deadline = Date.now() + 90_000;
  while (!out.includes("Press Ctrl-C to stop both.")) {
    if (proc.exitCode !== null) assert.fail(`the script exited early (${proc.exitCode}):\n${out}`);
    if (Date.now() > deadline) assert.fail(`the script did not come up in 90 s:\n${out}`);
    await sleep(100);
  }
  const key = out.match(new RegExp(`http://localhost:${frontendPort}/\\?session_api_key=([0-9a-f]{40,})`))?.[1];
  assert.ok(key, `the printed frontend URL carries a session key:\n${out}`);
  assert.match(out, new RegExp(`http://localhost:${backendPort}/\\?session_api_key=${key}`));

  // The seed's checks.
  const health = await fetch(`http://127.0.0.1:${backendPort}/api/health`);
  assert.equal(health.status, 200);
  const page0 = await fetch(`http://127.0.0.1:${frontendPort}/`);
  assert.equal(page0.status, 200);
  const html = await page0.text();
  assert.match(html, /<div id="app">/);
  assert.match(html, /@vite\/client/, "served by the Vite dev server");
  // Without the key nobody gets in, through the backend or the dev server's proxy.
  for (const port of [backendPort, frontendPort]) {
    assert.equal((await fetch(`http://127.0.0.1:${port}/api/conversations`)).status, 401, `no key on :${port}`);
  }
  // A foreign page is refused even with the key.
  const foreign = await fetch(`http://127.0.0.1:${frontendPort}/api/conversations`, {
    headers: { "X-Session-API-Key": key, Origin: "http://evil.example" },
  });
  assert.equal(foreign.status, 403);
  // REST through the dev server's proxy, with the key.
  const list = await fetch(`http://127.0.0.1:${frontendPort}/api/conversations`, { headers: { "X-Session-API-Key": key } });
  assert.equal(list.status, 200);
  assert.ok(Array.isArray((await list.json()).results));

  // The UI through the dev server: the socket goes through the proxy, over WebSocket.
  browser = await launchBrowser();
  const page = await browser.context.newPage();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  // The printed URL: the key goes into a cookie and out of the address bar.
  await page.goto(`http://127.0.0.1:${frontendPort}/?session_api_key=${key}`);
  assert.equal(new URL(page.url()).search, "", `the key left the address bar: ${page.url()}`);
  await page.fill("[data-testid=new-message]", "via the vite proxy");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/conversations\//, { timeout: 30_000 });
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]", { timeout: 30_000 });
  await page.locator("[data-testid=terminal-input]").fill("echo through-the-proxy");
  await page.locator("[data-testid=terminal-input]").press("Enter");
  await page.waitForSelector("[data-testid=terminal-entry] .t-out:has-text('through-the-proxy')");
  await screenshot(page, "vite-dev-server");
  assert.ok(
    sockets.some((u) => u.startsWith(`ws://127.0.0.1:${frontendPort}/socket.io/`) && u.includes("transport=websocket")),
    `a WebSocket through the dev server: ${sockets.join(", ")}`,
  );
  await browser.close();
  browser = null;

  // Ctrl-C stops both.
  proc.kill("SIGINT");
  const t = setTimeout(() => proc.kill("SIGKILL"), 15_000);
  const res = await exited;
  clearTimeout(t);
  assert.equal(res.code, 0, `clean exit on Ctrl-C:\n${out}`);
  assert.equal(await portOpen(backendPort), false, "the backend stopped");
  assert.equal(await portOpen(frontendPort), false, "the dev server stopped");
});
