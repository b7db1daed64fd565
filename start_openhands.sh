#!/usr/bin/env bash
# Builds and starts openhands-server on BACKEND_HOST:BACKEND_PORT (default 0.0.0.0:12000),
# logging to logs/backend.log. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")"

export BACKEND_HOST="${BACKEND_HOST:-0.0.0.0}"
export BACKEND_PORT="${BACKEND_PORT:-12000}"
export DEBUG="${DEBUG:-true}"
export CORS_ALLOWED_ORIGINS="${CORS_ALLOWED_ORIGINS:-*}"

echo "Building the backend (cargo build --release)..."
cargo build --release --locked

mkdir -p logs
echo "Starting the backend on http://${BACKEND_HOST}:${BACKEND_PORT} (log: logs/backend.log)"
./target/release/openhands-server --host "$BACKEND_HOST" --port "$BACKEND_PORT" >>logs/backend.log 2>&1 &
BACKEND_PID=$!
trap 'echo; echo "Stopping..."; kill "$BACKEND_PID" 2>/dev/null; wait "$BACKEND_PID" 2>/dev/null; exit 0' INT TERM

for _ in $(seq 1 50); do
  if curl -fsS "http://127.0.0.1:${BACKEND_PORT}/api/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$BACKEND_PID" 2>/dev/null; then echo "The backend failed to start; see logs/backend.log"; tail -n 20 logs/backend.log; exit 1; fi
  sleep 0.2
done
echo "Backend:   http://localhost:${BACKEND_PORT}  (health: curl http://localhost:${BACKEND_PORT}/api/health)"
echo "WebSocket: ws://localhost:${BACKEND_PORT}/socket.io/?EIO=4&transport=websocket&conversation_id=ID&latest_event_id=-1"
echo "Press Ctrl-C to stop."
wait "$BACKEND_PID"
