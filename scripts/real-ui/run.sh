#!/usr/bin/env bash
# Run the real-UI journey against an openhands-server binary.
#
# usage: run.sh [OUT_DIR]
# env:   OPENHANDS_BIN (default <repo>/target/release/openhands-server), REAL_UI_DIR,
#        CHROMIUM (default /usr/bin/chromium), PHASES, SERVER_ARGS, RESTART_SIGNAL (see journey.mjs)
#        REPEAT=N  run the journey N times (stability); the exit status is non-zero if any run failed
# Needs build.sh to have run once. journey.mjs starts the scripted LLM, the server (free port,
# temporary store) and the UI proxy itself and stops them at the end.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-${TMPDIR:-/tmp}/real-ui-out-$(date +%Y%m%d-%H%M%S)}
DIR=${REAL_UI_DIR:-${TMPDIR:-/tmp}/real-ui}
test -f "$DIR/src/build/index.html" || { echo "no UI build in $DIR/src/build: run build.sh first" >&2; exit 2; }
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null || { echo "no Chromium at ${CHROMIUM:-/usr/bin/chromium}" >&2; exit 2; }
RC=0
for i in $(seq "${REPEAT:-1}"); do
  RUN_OUT=$OUT; [ "${REPEAT:-1}" -gt 1 ] && RUN_OUT=$OUT/run-$i
  OUT_DIR="$RUN_OUT" node "$HERE/journey.mjs" || RC=1
  echo "artifacts: $RUN_OUT" >&2
done
exit $RC
