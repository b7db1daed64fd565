// Serve the built OpenHands web UI and reverse-proxy a backend on the same origin
// (HTTP and websocket upgrade), so the UI's same-origin REST and Socket.IO calls reach it.
//
// CLI:    node serve.mjs --port 3901 --backend http://127.0.0.1:3900 [--build DIR] [--log FILE.jsonl]
// module: const s = await startServe({ port, backend, build, log }); s.url; s.close()
// env:    REAL_UI_DIR (default ${TMPDIR:-/tmp}/real-ui): build.sh's work dir; the build is
//         $REAL_UI_DIR/src/build and http-proxy is in $REAL_UI_DIR/tools/node_modules.
//
// Routing: paths under PROXY_PREFIXES and every non-GET request go to the backend;
// otherwise a file of the build; otherwise index.html (client routes such as
// /conversations/<id> and /settings). A missing /assets/* file is a 404.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export const REAL_UI_DIR = process.env.REAL_UI_DIR || path.join(os.tmpdir(), "real-ui");
const PROXY_PREFIXES = (process.env.PROXY_PREFIXES ||
  "/api/,/socket.io/,/health,/alive,/ready,/server_info,/mcp,/config.json,/oauth,/openapi.json,/docs")
  .split(",").filter(Boolean);
const MIME = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8", ".json": "application/json; charset=utf-8", ".svg": "image/svg+xml",
  ".png": "image/png", ".ico": "image/x-icon", ".wav": "audio/wav", ".woff": "font/woff", ".woff2": "font/woff2",
  ".ttf": "font/ttf", ".txt": "text/plain; charset=utf-8", ".xml": "application/xml",
  ".webmanifest": "application/manifest+json", ".map": "application/json",
};

export async function startServe({ port = 0, host = "127.0.0.1", backend, build, log } = {}) {
  const require = createRequire(path.join(REAL_UI_DIR, "tools", "package.json"));
  const httpProxy = require("http-proxy");
  const BUILD = path.resolve(build || path.join(REAL_UI_DIR, "src", "build"));
  if (!fs.existsSync(path.join(BUILD, "index.html"))) throw new Error(`no UI build at ${BUILD} (run build.sh)`);
  const logStream = log ? fs.createWriteStream(log, { flags: "a" }) : null;
  const record = (o) => logStream?.write(JSON.stringify({ t: new Date().toISOString(), ...o }) + "\n");

  const proxy = httpProxy.createProxyServer({ target: backend, ws: true, changeOrigin: false, xfwd: true });
  proxy.on("error", (err, req, res) => {
    record({ kind: "proxy-error", method: req.method, url: req.url, error: String(err) });
    if (res && typeof res.writeHead === "function" && !res.headersSent) {
      res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "backend unreachable", detail: String(err) }));
    } else if (res && typeof res.destroy === "function") {
      res.destroy();
    }
  });
  proxy.on("proxyRes", (pres, req) => record({ kind: "http", method: req.method, url: req.url, status: pres.statusCode }));
  const isBackend = (url) => PROXY_PREFIXES.some((p) => {
    const bare = p.replace(/\/$/, "");
    return url === bare || url.startsWith(p) || url.startsWith(bare + "?");
  });

  const serveStatic = (req, res) => {
    const p = decodeURIComponent(new URL(req.url, "http://x").pathname);
    let file = path.join(BUILD, p);
    if (!file.startsWith(BUILD)) { res.writeHead(403); return res.end(); }
    let st = null;
    try { st = fs.statSync(file); } catch { /* missing */ }
    if (st && st.isDirectory()) { file = path.join(file, "index.html"); try { st = fs.statSync(file); } catch { st = null; } }
    if (!st) {
      if (p.startsWith("/assets/") || p.startsWith("/locales/") || path.extname(p)) {
        res.writeHead(404, { "content-type": "text/plain" }); return res.end("not found");
      }
      file = path.join(BUILD, "index.html");
    }
    res.writeHead(200, {
      "content-type": MIME[path.extname(file)] || "application/octet-stream",
      "cache-control": file.includes(`${path.sep}assets${path.sep}`) ? "public, max-age=31536000, immutable" : "no-cache",
    });
    if (req.method === "HEAD") return res.end();
    fs.createReadStream(file).pipe(res);
  };

  const server = http.createServer((req, res) => {
    if (isBackend(req.url) || (req.method !== "GET" && req.method !== "HEAD")) return proxy.web(req, res);
    return serveStatic(req, res);
  });
  server.on("upgrade", (req, socket, head) => {
    record({ kind: "upgrade", url: req.url });
    socket.on("error", () => {});
    if (isBackend(req.url)) return proxy.ws(req, socket, head);
    socket.destroy();
  });
  await new Promise((resolve, reject) => { server.once("error", reject); server.listen(port, host, resolve); });
  const url = `http://${host}:${server.address().port}/`;
  return {
    url, build: BUILD,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => { logStream?.end(); r(); }); }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (n, d) => { const i = process.argv.indexOf(`--${n}`); return i > 0 ? process.argv[i + 1] : d; };
  const s = await startServe({
    port: Number(arg("port", process.env.UI_PORT || "3901")),
    backend: arg("backend", process.env.BACKEND_URL || "http://127.0.0.1:3000"),
    build: arg("build", undefined), log: arg("log", process.env.PROXY_LOG || undefined),
  });
  console.log(JSON.stringify({ serving: s.build, url: s.url }));
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => s.close().then(() => process.exit(0)));
}
