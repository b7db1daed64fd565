#!/usr/bin/env bash
# Starts OpenHands for development (seed 002): installs the frontend's npm packages if
# missing, builds the backend (cargo build --release --locked) and the frontend, then runs
#   - the backend on BACKEND_HOST:BACKEND_PORT (default 0.0.0.0:12000), log in logs/backend.log,
#     which also serves the built UI at /;
#   - the Vite dev server on VITE_FRONTEND_PORT (default 12001), log in logs/frontend.log,
#     proxying /api and /socket.io (WebSocket included) to the backend.
# Ctrl-C stops both.
#
# Backend:  BACKEND_HOST, BACKEND_PORT, DEBUG (default true), CORS_ALLOWED_ORIGINS (default: the
#           dev server's own origins; `*` trusts any page, without credentials),
#           SESSION_API_KEY (default: a random key when the backend listens beyond this machine,
#           printed in the URLs to open; OPENHANDS_NO_AUTH=1 serves without one),
#           and everything the server reads (LLM_MODEL, LLM_API_KEY, LLM_BASE_URL, config.toml, ...).
# Frontend: VITE_BACKEND_HOST (default 127.0.0.1:$BACKEND_PORT), VITE_FRONTEND_PORT,
#           VITE_USE_TLS (default false), VITE_INSECURE_SKIP_VERIFY (default true);
#           from the environment or frontend/.env (the environment wins).
#           FRONTEND_HOST: the dev server's bind address (default 0.0.0.0).
# Shortcuts: BACKEND_BIN=path/to/openhands-server uses that binary instead of building one;
#            SKIP_BUILD=1 skips both builds (uses what was built before).
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$PWD"

export BACKEND_HOST="${BACKEND_HOST:-0.0.0.0}"
export BACKEND_PORT="${BACKEND_PORT:-12000}"
export DEBUG="${DEBUG:-true}"
FRONTEND_HOST="${FRONTEND_HOST:-0.0.0.0}"

# A KEY=value from frontend/.env (last one wins; quotes stripped), or nothing.
dotenv_get() {
  local file="frontend/.env" line
  [ -f "$file" ] || return 0
  line="$(grep -E "^[[:space:]]*(export[[:space:]]+)?$1[[:space:]]*=" "$file" | tail -n 1 || true)"
  [ -n "$line" ] || return 0
  line="${line#*=}"
  line="${line%%#*}"
  line="$(printf '%s' "$line" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/^"\(.*\)"$/\1/' -e "s/^'\(.*\)'\$/\1/")"
  printf '%s' "$line"
}

VITE_FRONTEND_PORT="${VITE_FRONTEND_PORT:-$(dotenv_get VITE_FRONTEND_PORT)}"
export VITE_FRONTEND_PORT="${VITE_FRONTEND_PORT:-12001}"
# Browser pages trusted by the backend: the dev server's (which keeps the browser's Host
# and Origin when it proxies, so pages it serves are same-origin to the backend anyway).
export CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS:-http://localhost:${VITE_FRONTEND_PORT},http://127.0.0.1:${VITE_FRONTEND_PORT}}"

is_loopback() {
  case "$1" in
    localhost | 127.* | ::1 | "[::1]") return 0 ;;
    *) return 1 ;;
  esac
}

# Anyone on the network could run commands on this machine: when the backend listens
# beyond it, every client needs a key (the server would make one up itself; making it
# here lets this script print the URLs with it).
if [ -z "${SESSION_API_KEY:-}" ] && ! is_loopback "$BACKEND_HOST" &&
  [ "${OPENHANDS_NO_AUTH:-}" != 1 ] && [ "${OPENHANDS_NO_AUTH:-}" != true ]; then
  SESSION_API_KEY="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
  export SESSION_API_KEY
fi
# Only default the proxy target when neither the environment nor frontend/.env sets it
# (Vite lets the environment override .env).
if [ -z "${VITE_BACKEND_HOST:-}" ] && [ -z "$(dotenv_get VITE_BACKEND_HOST)" ]; then
  export VITE_BACKEND_HOST="127.0.0.1:${BACKEND_PORT}"
fi

need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "error: '$1' is required but not installed. $2" >&2
    exit 1
  fi
}

# 200 from a URL? (curl, else node's fetch)
http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "$1" 2>/dev/null
  fi
}

local_host() {
  case "$1" in
    "" | 0.0.0.0 | "::" | "[::]") echo 127.0.0.1 ;;
    *) echo "$1" ;;
  esac
}

need node "Install Node.js 20.19 or newer (for example: apt-get install nodejs npm)."
need npm "Install npm (for example: apt-get install npm)."

# --- npm packages ------------------------------------------------------------------
if [ ! -d frontend/node_modules ] || [ ! -f frontend/node_modules/.package-lock.json ] ||
  [ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]; then
  echo "Installing the frontend's npm packages (npm ci)..."
  (cd frontend && npm ci --no-audit --no-fund)
fi

# --- builds --------------------------------------------------------------------------
if [ -n "${BACKEND_BIN:-}" ]; then
  BIN="$(cd "$(dirname "$BACKEND_BIN")" && pwd)/$(basename "$BACKEND_BIN")"
  [ -x "$BIN" ] || { echo "error: BACKEND_BIN=$BACKEND_BIN is not an executable" >&2; exit 1; }
else
  BIN="$ROOT/target/release/openhands-server"
  if [ "${SKIP_BUILD:-}" != 1 ]; then
    need cargo "Install a Rust toolchain (rustup) to build the backend."
    echo "Building the backend (cargo build --release --locked)..."
    cargo build --release --locked
  fi
  [ -x "$BIN" ] || { echo "error: $BIN is missing; build it (cargo build --release) or unset SKIP_BUILD" >&2; exit 1; }
fi
if [ "${SKIP_BUILD:-}" != 1 ] || [ ! -f frontend/dist/index.html ]; then
  echo "Building the frontend (npm run build)..."
  (cd frontend && npm run build)
fi

# --- run -----------------------------------------------------------------------------
mkdir -p logs
BACKEND_PID=""
FRONTEND_PID=""

stop_all() {
  trap - INT TERM EXIT
  local pids=""
  [ -n "$FRONTEND_PID" ] && kill -0 "$FRONTEND_PID" 2>/dev/null && pids="$pids $FRONTEND_PID"
  [ -n "$BACKEND_PID" ] && kill -0 "$BACKEND_PID" 2>/dev/null && pids="$pids $BACKEND_PID"
  if [ -n "$pids" ]; then
    echo
    echo "Stopping..."
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 1 100); do
      local alive=""
      for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ -z "$alive" ] && break
      sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    wait 2>/dev/null || true
  fi
}
trap 'stop_all; exit 0' INT TERM
trap 'stop_all' EXIT

echo "=== $(date '+%Y-%m-%d %H:%M:%S') starting $BIN on ${BACKEND_HOST}:${BACKEND_PORT}" >>logs/backend.log
OPENHANDS_FRONTEND_DIR="$ROOT/frontend/dist" \
  "$BIN" --host "$BACKEND_HOST" --port "$BACKEND_PORT" >>logs/backend.log 2>&1 &
BACKEND_PID=$!

BACKEND_URL="http://$(local_host "$BACKEND_HOST"):${BACKEND_PORT}"
for _ in $(seq 1 150); do
  http_ok "$BACKEND_URL/api/health" && break
  if ! kill -0 "$BACKEND_PID" 2>/dev/null; then
    echo "The backend failed to start; the end of logs/backend.log:" >&2
    tail -n 20 logs/backend.log >&2
    exit 1
  fi
  sleep 0.2
done
http_ok "$BACKEND_URL/api/health" || { echo "The backend did not answer on $BACKEND_URL/api/health" >&2; exit 1; }

echo "=== $(date '+%Y-%m-%d %H:%M:%S') vite on ${FRONTEND_HOST}:${VITE_FRONTEND_PORT} -> ${VITE_BACKEND_HOST:-$(dotenv_get VITE_BACKEND_HOST)}" >>logs/frontend.log
(cd frontend && exec node node_modules/vite/bin/vite.js --host "$FRONTEND_HOST" --port "$VITE_FRONTEND_PORT" --strictPort) \
  >>logs/frontend.log 2>&1 &
FRONTEND_PID=$!

FRONTEND_URL="http://$(local_host "$FRONTEND_HOST"):${VITE_FRONTEND_PORT}"
for _ in $(seq 1 300); do
  http_ok "$FRONTEND_URL/" && break
  if ! kill -0 "$FRONTEND_PID" 2>/dev/null; then
    echo "The Vite dev server failed to start; the end of logs/frontend.log:" >&2
    tail -n 20 logs/frontend.log >&2
    exit 1
  fi
  sleep 0.2
done

KEY_QUERY=""
[ -n "${SESSION_API_KEY:-}" ] && KEY_QUERY="/?session_api_key=${SESSION_API_KEY}"
echo
echo "OpenHands is running:"
echo "  Frontend (Vite dev server): http://localhost:${VITE_FRONTEND_PORT}${KEY_QUERY}"
echo "  Backend (also serves the built UI): http://localhost:${BACKEND_PORT}${KEY_QUERY}   (health: curl http://localhost:${BACKEND_PORT}/api/health)"
if ! is_loopback "$FRONTEND_HOST" && [ "$FRONTEND_HOST" != "" ]; then
  NAME="$(hostname 2>/dev/null || echo this-machine)"
  echo "  From other machines: http://${NAME}:${VITE_FRONTEND_PORT}${KEY_QUERY}"
fi
echo "  WebSocket: ws://localhost:${BACKEND_PORT}/socket.io/?EIO=4&transport=websocket&conversation_id=ID&latest_event_id=-1"
if [ -n "${SESSION_API_KEY:-}" ]; then
  echo "  Session key (required from every client: X-Session-API-Key header, session_api_key query): ${SESSION_API_KEY}"
fi
echo "  Logs: logs/backend.log, logs/frontend.log"
echo "Press Ctrl-C to stop both."

# Exit when either one stops (and stop the other).
while kill -0 "$BACKEND_PID" 2>/dev/null && kill -0 "$FRONTEND_PID" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
if ! kill -0 "$BACKEND_PID" 2>/dev/null; then
  echo "The backend stopped; see logs/backend.log" >&2
else
  echo "The Vite dev server stopped; see logs/frontend.log" >&2
fi
exit 1
