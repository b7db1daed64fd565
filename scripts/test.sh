#!/usr/bin/env bash
# Installs what the tests need on a fresh machine and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing test dependencies"
(cd tests/node && npm ci --no-audit --no-fund)
python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

echo "== formatting and lints"
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

echo "== Rust unit and integration tests"
cargo test --locked

echo "== socket.io-client@4 (Node) tests"
export OPENHANDS_BIN="$PWD/target/debug/openhands-server"
(cd tests/node && npm test)

echo "== python-socketio tests"
python3 -m pytest -q tests/python
