// A conversation of 10,000 events in the web UI: it opens from the newest page (the
// socket resumes after it instead of replaying everything), the chat keeps only the
// items in view in the DOM, scrolling to the top loads older pages over REST until the
// first event, and the events held are always one continuous run of ids, each once.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { domIds, eventually, launchBrowser, renderedIds, screenshot, startServer, watchPage } from "./harness.mjs";
import { newestId, seedLongConversation } from "./long_seed.mjs";

const N = 10_000;
let srv;
let browser;
let page;
let pageErrors;
let cid;
let newest;
const wsUrls = [];

before(async () => {
  srv = await startServer();
  ({ cid, newest } = await seedLongConversation(srv.url, N));
  browser = await launchBrowser();
  page = await browser.context.newPage();
  pageErrors = watchPage(page);
  page.on("websocket", (ws) => wsUrls.push(ws.url()));
});

after(async () => {
  await browser?.close();
  await srv?.stop();
});

const chat = () => page.locator("[data-testid=chat]");
/** The oldest loaded id, read from the "load older" row; 0 once that row is gone (all loaded).
 * Read without waiting: the row disappears when the last page arrives. */
const floor = async () =>
  Number((await page.locator("[data-testid=load-older]").evaluateAll((els) => els[0]?.getAttribute("data-floor"))) ?? 0);

/** The ids held are newest-k … newest, each once, and nothing else. */
async function assertContinuous(label) {
  const ids = await renderedIds(page);
  const sorted = [...ids].sort((a, b) => a - b);
  assert.equal(new Set(ids).size, ids.length, `${label}: no id twice`);
  const top = sorted.at(-1);
  assert.ok(top >= newest, `${label}: the newest event is held (${top} < ${newest})`);
  assert.deepEqual(sorted, Array.from({ length: sorted.length }, (_, i) => sorted[0] + i), `${label}: no gap`);
  return sorted;
}

test("a 10,000-event conversation opens at its newest events with only a window of them in the DOM", async () => {
  assert.ok(newest >= N - 1, `seeded ${newest + 1} events`);
  await page.goto(`${srv.url}/conversations/${cid}`);
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  // The newest message is in view.
  const last = page.locator("[data-testid=msg-user]").last();
  await last.waitFor();
  const box = await last.boundingBox();
  const view = await chat().boundingBox();
  assert.ok(box && view && box.y + box.height <= view.y + view.height + 2 && box.y >= view.y - 2, "the newest item is in view");
  // The socket resumed after the page fetched over REST: no replay of the 10,000.
  const q = wsUrls.filter((u) => u.includes(cid)).map((u) => Number(new URL(u).searchParams.get("latest_event_id")));
  assert.ok(q.length >= 1 && q[0] >= newest - 1, `connected with latest_event_id near the end: ${q}`);
  // Far fewer than 10,000 items in the DOM.
  const inDom = await domIds(page);
  const rows = await page.locator("[data-testid=chat] .vrow").count();
  assert.ok(rows < 150 && inDom.length < 300, `${rows} rows and ${inDom.length} ids in the DOM`);
  assert.ok((await floor()) > N - 300, "only the newest page is loaded");
  await assertContinuous("at open");
  // The terminal shows the newest user command of the window.
  await page.click("[data-testid=side-terminal]");
  await page.locator("[data-testid=terminal]", { hasText: "tick-last" }).waitFor();
  await screenshot(page, "long-conversation-open");
});

test("a new event at the bottom is followed; scrolling up and back keeps the place", async () => {
  await page.fill("[data-testid=composer]", "fresh message at the end");
  await page.keyboard.press("Enter");
  const fresh = page.locator("[data-testid=msg-user]", { hasText: "fresh message at the end" });
  await fresh.waitFor();
  await eventually(
    async () => chat().evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight < 80),
    { label: "still at the bottom" },
  );
  newest = await newestId(srv.url, cid);
  // Scrolled up a little: a new event does not move the view.
  await chat().evaluate((el) => (el.scrollTop = el.scrollTop - 600));
  await page.waitForTimeout(100);
  const before = await chat().evaluate((el) => el.scrollTop);
  await fetch(`${srv.url}/api/conversations/${cid}/message`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message: "arrives while reading" }),
  });
  await page.locator(".jump").waitFor();
  assert.ok(Math.abs((await chat().evaluate((el) => el.scrollTop)) - before) < 2, "the view stayed where it was");
  await page.click(".jump");
  await page.locator("[data-testid=msg-user]", { hasText: "arrives while reading" }).waitFor();
  newest = await newestId(srv.url, cid);
});

/** Waits until the scan below the window (agent state, task list…) has finished. */
async function scanDone() {
  await page.locator("[data-testid=load-older][data-scan=done]").waitFor({ timeout: 60_000 });
}

test("a prepended page leaves the item in view where it was", async () => {
  await scanDone();
  // Older pages answer slowly, so that the view settles at the top before one arrives.
  await page.route(/\/events\?.*end_id=/, async (route) => {
    await new Promise((r) => setTimeout(r, 400));
    await route.continue();
  });
  const f = await floor();
  const seen = await chat().evaluate(async (el) => {
    el.scrollTop = 0;
    for (let i = 0; i < 3; i++) await new Promise((r) => requestAnimationFrame(r));
    const top = el.getBoundingClientRect().top;
    const row = [...el.querySelectorAll(".vrow")].find((r) => r.getBoundingClientRect().bottom > top + 40);
    return { key: row.dataset.vkey, y: row.getBoundingClientRect().top - top };
  });
  await eventually(async () => (await floor()) < f, { label: "the older page" });
  await page.waitForTimeout(200);
  const y = await page
    .locator(`[data-testid=chat] .vrow[data-vkey="${seen.key}"]`)
    .evaluate((row) => row.getBoundingClientRect().top - row.closest("[data-testid=chat]").getBoundingClientRect().top);
  assert.ok(Math.abs(y - seen.y) <= 2, `item ${seen.key} stayed at ${seen.y}px (now ${y}px)`);
  await page.unroute(/\/events\?.*end_id=/);
  await assertContinuous("after one older page");
});

test("scrolling to the top loads older pages down to the first event, each id once", async () => {
  let previousFloor = await floor();
  let pages = 0;
  while (await page.locator("[data-testid=load-older]").count()) {
    await chat().evaluate((el) => (el.scrollTop = 0));
    await eventually(async () => (await page.locator("[data-testid=load-older]").count()) === 0 || (await floor()) < previousFloor, {
      timeout: 15_000,
      label: `an older page below ${previousFloor}`,
    });
    pages++;
    if (pages % 25 === 0) await assertContinuous(`after ${pages} pages`);
    previousFloor = (await page.locator("[data-testid=load-older]").count()) ? await floor() : 0;
    assert.ok(pages < 200, "loading ends");
  }
  await page.locator("[data-testid=conversation-start]").waitFor();
  const ids = await assertContinuous("at the start");
  assert.equal(ids[0], 0);
  assert.equal(ids.length, newest + 1, "every stored event exactly once");
  const rows = await page.locator("[data-testid=chat] .vrow").count();
  assert.ok(rows < 150, `still only a window in the DOM: ${rows} rows`);
  // The last page was prepended above the item in view (which stayed put): back to the top.
  await chat().evaluate((el) => (el.scrollTop = 0));
  await eventually(async () => /msg #0\b/.test(await chat().innerText()), { label: "the first message at the top" });
  await screenshot(page, "long-conversation-start");
});

test("a failing older page is reported and loads on retry", async () => {
  await page.reload();
  await page.waitForSelector("[data-testid=connection-state][data-state=connected]");
  await scanDone();
  const f = await floor();
  let failed = 0;
  await page.route(/\/events\?.*end_id=/, (route) => {
    if (failed++ === 0) return route.fulfill({ status: 500, contentType: "application/json", body: '{"detail":"boom"}' });
    return route.continue();
  });
  await chat().evaluate((el) => (el.scrollTop = 0));
  await page.locator("[data-testid=toast]", { hasText: "Could not load earlier events" }).waitFor();
  await chat().evaluate((el) => (el.scrollTop = 10));
  await chat().evaluate((el) => (el.scrollTop = 0));
  await eventually(async () => (await floor()) < f, { label: "the retried page" });
  await page.unroute(/\/events\?.*end_id=/);
  await assertContinuous("after the retry");
  assert.deepEqual(pageErrors, []);
});
