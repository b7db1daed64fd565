// The web UI on a conversation of 10,000 events, in headless Chromium against the real
// server: time to first paint (navigation → the newest message visible in the chat) and
// the frame durations while the chat is scrolled programmatically from the bottom to the
// top of what is loaded, one step per frame.
//
//   OPENHANDS_BIN=target/release/openhands-server node bench-long-conversation.mjs [runs]
//   DIST=/path/to/other/frontend/dist …   (measure another build of the UI)

import path from "node:path";
import { launchBrowser, startServer } from "./harness.mjs";
import { seedLongConversation } from "./long_seed.mjs";

const N = Number(process.env.EVENTS ?? 10_000);
const RUNS = Number(process.argv[2] ?? 5);

const srv = await startServer(process.env.DIST ? { env: { OPENHANDS_FRONTEND_DIR: path.resolve(process.env.DIST) } } : {});
const { cid, newest } = await seedLongConversation(srv.url, N);
const browser = await launchBrowser();

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const paints = [];
const frames = [];
const domCounts = [];
for (let run = 0; run < RUNS; run++) {
  const page = await browser.context.newPage();
  const t0 = Date.now();
  await page.goto(`${srv.url}/conversations/${cid}`);
  // The newest message, in view.
  await page.waitForFunction(
    (text) => {
      const chat = document.querySelector("[data-testid=chat]");
      if (!chat) return false;
      const box = chat.getBoundingClientRect();
      return [...chat.querySelectorAll("[data-testid=msg-user]")].some((el) => {
        const r = el.getBoundingClientRect();
        return el.textContent.includes(text) && r.bottom <= box.bottom + 2 && r.top >= box.top - 2 && r.height > 0;
      });
    },
    `msg #${String(N - 1).slice(0, 2)}`,
    { timeout: 120_000, polling: "raf" },
  );
  paints.push(Date.now() - t0);
  domCounts.push(await page.$$eval("[data-testid=chat] *", (els) => els.length));
  // The one-off background read below the window (agent state, task list) ends first.
  await page.waitForFunction(() => !document.querySelector("[data-testid=load-older][data-scan=running]"), null, { timeout: 60_000 });
  // Scroll from the bottom up, 120 px per frame, for 300 frames; every frame's duration.
  const durations = await page.evaluate(async () => {
    const el = document.querySelector("[data-testid=chat]");
    const out = [];
    let last = performance.now();
    for (let i = 0; i < 300; i++) {
      el.scrollTop = Math.max(0, el.scrollTop - 120);
      await new Promise((r) => requestAnimationFrame(r));
      const now = performance.now();
      out.push(now - last);
      last = now;
    }
    return out;
  });
  frames.push(...durations);
  await page.close();
}

console.log(`conversation of ${newest + 1} events, ${RUNS} runs${process.env.DIST ? ` (UI from ${process.env.DIST})` : ""}`);
console.log(`time to first paint (newest message visible): median ${pct(paints, 50)} ms, runs ${paints.join(", ")} ms`);
console.log(`scroll frame duration: p50 ${pct(frames, 50).toFixed(1)} ms, p95 ${pct(frames, 95).toFixed(1)} ms, max ${Math.max(...frames).toFixed(1)} ms`);
console.log(`elements in the chat after opening: ${domCounts.join(", ")}`);
await browser.close();
await srv.stop();
process.exit(0);
