// Losing the connection: the server is killed (SIGKILL: the transport just drops) or
// shut down (SIGTERM: it closes the socket itself) and restarted on the same port and
// store, while events keep coming. The page shows its connection state, comes back by
// itself with `latest_event_id`, and ends with every event exactly once.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  allEvents,
  api,
  eventually,
  freePort,
  launchBrowser,
  renderedIds,
  screenshot,
  startServer,
  tempDir,
  watchPage,
} from "./harness.mjs";

let port;
let dir;
let srv;
let browser;
let page;
let pageErrors;
let cid;
const wsUrls = [];

before(async () => {
  port = await freePort();
  dir = tempDir();
  srv = await startServer({ port, dir });
  browser = await launchBrowser();
  page = await browser.context.newPage();
  pageErrors = watchPage(page);
  page.on("websocket", (ws) => wsUrls.push(ws.url()));

  const created = await api(srv.url, "POST", "/api/conversations", { initial_user_msg: "reconnect test" });
  cid = created.data.conversation_id;
  await page.goto(`${srv.url}/conversations/${cid}`);
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  await post(5, "before");
  await page.waitForSelector("[data-testid=msg-user]:has-text('before 4')");
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

async function post(n, label) {
  for (let i = 0; i < n; i++) {
    const r = await api(srv.url, "POST", `/api/conversations/${cid}/message`, { message: `${label} ${i}` });
    assert.equal(r.status, 200, JSON.stringify(r.data));
  }
}

async function assertEveryEventOnce() {
  const events = await allEvents(srv.url, cid);
  await eventually(
    async () => {
      const ids = await renderedIds(page);
      return ids.length === events.length && new Set(ids).size === ids.length;
    },
    { label: `all ${events.length} events rendered once` },
  );
  const ids = await renderedIds(page);
  assert.deepEqual([...ids].sort((a, b) => a - b), events.map((e) => e.id));
}

async function restart(signal) {
  await srv.stop(signal);
  await page.waitForSelector("[data-testid=connection-state]:not([data-state=connected])", { timeout: 10_000 });
  await screenshot(page, `reconnecting-${signal.toLowerCase()}`);
  srv = await startServer({ port, dir });
}

for (const signal of ["SIGKILL", "SIGTERM"]) {
  test(`after a ${signal} and a restart the page resumes by itself, nothing lost or doubled`, async () => {
    const before = wsUrls.length;
    await restart(signal);
    await post(4, `after ${signal}`);
    await page.waitForSelector(`[data-testid=connection-state][data-state=connected]`, { timeout: 20_000 });
    await page.waitForSelector(`[data-testid=msg-user]:has-text('after ${signal} 3')`, { timeout: 20_000 });
    await assertEveryEventOnce();
    const resumed = wsUrls.slice(before).map((u) => Number(new URL(u).searchParams.get("latest_event_id")));
    assert.ok(resumed.length >= 1 && resumed.every((k) => k >= 5), `reconnects resume after the last event: ${resumed}`);
  });
}

test("a conversation stopped on the server shows as disconnected; Reconnect resumes it", async () => {
  const r = await api(srv.url, "POST", `/api/conversations/${cid}/stop`);
  assert.equal(r.status, 200);
  await page.waitForSelector("[data-testid=connection-state][data-state=closed]");
  await page.waitForSelector("[data-testid=reconnect]");
  await screenshot(page, "disconnected");
  await page.click("[data-testid=reconnect]");
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  await post(2, "after reconnect");
  await page.waitForSelector("[data-testid=msg-user]:has-text('after reconnect 1')");
  await assertEveryEventOnce();
  assert.deepEqual(pageErrors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), []);
});
