#!/usr/bin/env bash
# Installs what the tests need on a fresh machine and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies"
(cd tests/node && npm ci --no-audit --no-fund)
python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
# Debian's Chromium: the agent's interactive browser (tests/browser.rs) and the UI's
# end-to-end tests.
if [ -z "${CHROMIUM_PATH:-}" ] && [ ! -x /usr/bin/chromium ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# The sandbox tests drive curl, git, python3 (with venv) and util-linux inside the sandbox.
if ! command -v curl >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl python3-venv util-linux >/dev/null
fi

# Debian's PostgreSQL server: the store tests start their own (initdb + postgres on a
# private socket, as the `postgres` user when run as root); no cluster is used.
if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

echo "== Rust unit and integration tests"
cargo test --locked

echo "== delivery and persistence tests again, on PostgreSQL"
OPENHANDS_TEST_STORE=postgres cargo test --locked --test delivery --test persistence

echo "== socket.io-client@4 (Node) tests"
export OPENHANDS_BIN="$PWD/target/debug/openhands-server"
(cd tests/node && npm test)

# ---- web UI (frontend/ and tests/e2e/) ---------------------------------------------
echo "== web UI: npm packages, type check, build, Vitest unit tests"
(cd frontend && npm ci --no-audit --no-fund && npm run build && npm test)

echo "== web UI: browser end-to-end tests (headless Chromium against the real binary)"
(cd tests/e2e && npm ci --no-audit --no-fund && npm test)
# ---- end of the web UI block --------------------------------------------------------

echo "== python-socketio tests"
python3 -m pytest -q tests/python
