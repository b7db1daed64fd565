/// <reference types="vitest/config" />
// Vite config: builds the UI to dist/ (served by openhands-server at /), and runs the dev
// server (start_openhands.sh) with /api and /socket.io (WebSocket included) proxied to
// the backend. Variables come from the environment or frontend/.env:
//   VITE_BACKEND_HOST          backend host:port        (default 127.0.0.1:12000; 0.0.0.0 means this machine)
//   VITE_FRONTEND_PORT         dev server port          (default 12001)
//   VITE_USE_TLS               backend speaks https/wss (default false)
//   VITE_INSECURE_SKIP_VERIFY  accept any TLS cert      (default true)
import { defineConfig, loadEnv } from "vite";

function bool(v: string | undefined, dflt: boolean): boolean {
  if (v === undefined || v === "") return dflt;
  return /^(1|true|yes|on)$/i.test(v.trim());
}

export default defineConfig(({ mode }) => {
  const env = { ...loadEnv(mode, process.cwd(), "VITE_"), ...process.env };
  const backendHost = (env.VITE_BACKEND_HOST || "127.0.0.1:12000").replace(/^0\.0\.0\.0(?=:|$)/, "127.0.0.1");
  const tls = bool(env.VITE_USE_TLS, false);
  const insecure = bool(env.VITE_INSECURE_SKIP_VERIFY, true);
  const port = Number(env.VITE_FRONTEND_PORT || 12001);
  const http = `${tls ? "https" : "http"}://${backendHost}`;
  const ws = `${tls ? "wss" : "ws"}://${backendHost}`;

  return {
    oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
    build: {
      outDir: "dist",
      emptyOutDir: true,
      sourcemap: false,
      chunkSizeWarningLimit: 900,
    },
    server: {
      port,
      strictPort: true,
      // changeOrigin stays off: the backend sees the browser's own Host and Origin, so
      // pages of this dev server are same-origin to it and foreign pages are refused.
      // A page opened with ?session_api_key= goes to the backend, which keeps the key in
      // a cookie and redirects to the same page without it.
      proxy: {
        "^/[^?]*\\?(.*&)?session_api_key=": { target: http, changeOrigin: false, secure: !insecure },
        "/api": { target: http, changeOrigin: false, secure: !insecure },
        "/socket.io": { target: ws, ws: true, changeOrigin: false, secure: !insecure },
      },
    },
    preview: { port, strictPort: true },
    test: {
      include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
      environment: "node",
    },
  };
});
