// start_openhands.sh (seed 002): the backend and the Vite dev server come up, the seed's
// curl checks pass, the UI works through the dev server's /api and /socket.io (WebSocket)
// proxy, and Ctrl-C stops both. The test hands the script the already-built debug binary
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

test("start_openhands.sh serves the backend and the Vite dev server, proxies the socket, and stops on Ctrl-C", async () => {
  ensureFrontendBuilt();
  const backendPort = await freePort();
  const frontendPort = await freePort();
  const store = tempDir();
  const env = { ...process.env };
  for (const k of ["LLM_MODEL", "LLM_API_KEY", "LLM_BASE_URL", "SESSION_API_KEY", "VITE_BACKEND_HOST"]) delete env[k];
  Object.assign(env, {
    BACKEND_BIN: BIN,
    SKIP_BUILD: "1",
    BACKEND_HOST: "127.0.0.1",
    BACKEND_PORT: String(backendPort),
    FRONTEND_HOST: "127.0.0.1",
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
  assert.match(out, new RegExp(`http://localhost:${frontendPort}`));
  assert.match(out, new RegExp(`http://localhost:${backendPort}`));

  // The seed's checks.
  const health = await fetch(`http://127.0.0.1:${backendPort}/api/health`);
  assert.equal(health.status, 200);
  const page0 = await fetch(`http://127.0.0.1:${frontendPort}/`);
  assert.equal(page0.status, 200);
  const html = await page0.text();
  assert.match(html, /<div id="app">/);
  assert.match(html, /@vite\/client/, "served by the Vite dev server");
  // REST through the dev server's proxy.
  const settings = await fetch(`http://127.0.0.1:${frontendPort}/api/settings`);
  assert.equal(settings.status, 200);
  assert.ok("llm_api_key_set" in (await settings.json()));

  // The UI through the dev server: the socket goes through the proxy, over WebSocket.
  browser = await launchBrowser();
  const page = await browser.context.newPage();
  const sockets = [];
  page.on("websocket", (ws) => sockets.push(ws.url()));
  await page.goto(`http://127.0.0.1:${frontendPort}/`);
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
