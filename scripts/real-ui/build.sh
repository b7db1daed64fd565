#!/usr/bin/env bash
# Build the OpenHands web UI (its React frontend) from an OpenHands git repository, and
# install the two Node packages the journey needs (playwright-core, http-proxy).
#
# usage: build.sh OPENHANDS_GIT_DIR [COMMIT]
#   OPENHANDS_GIT_DIR  a clone of github.com/All-Hands-AI/OpenHands (its .git dir, the
#                      work tree, or a bare repository)
#   COMMIT             commit or tag to build (default: tag 0.59.0,
#                      d39f7ae0e66174c50bdc714304fed4078b5e3b72)
# env:
#   REAL_UI_DIR  work dir (default ${TMPDIR:-/tmp}/real-ui): the sources go to
#                $REAL_UI_DIR/src, the static build to $REAL_UI_DIR/src/build, the tools to
#                $REAL_UI_DIR/tools/node_modules
#   FORCE=1      rebuild even when a build of COMMIT is there
#
# The build is a static single-page app that talks to its own origin (VITE_BACKEND_BASE_URL
# is left unset), so serve.mjs can put any backend behind it. Mock APIs are off.
set -euo pipefail
GIT_DIR_ARG=${1:?usage: build.sh OPENHANDS_GIT_DIR [COMMIT]}
COMMIT=${2:-d39f7ae0e66174c50bdc714304fed4078b5e3b72}
DIR=${REAL_UI_DIR:-${TMPDIR:-/tmp}/real-ui}
SRC=$DIR/src

if [ -d "$GIT_DIR_ARG/.git" ]; then GITDIR="$GIT_DIR_ARG/.git"; else GITDIR="$GIT_DIR_ARG"; fi
git --git-dir="$GITDIR" rev-parse --verify -q "$COMMIT^{commit}" >/dev/null || { echo "commit $COMMIT not in $GITDIR" >&2; exit 2; }

if [ -f "$SRC/build/index.html" ] && [ "$(cat "$SRC/.commit" 2>/dev/null)" = "$COMMIT" ] && [ -z "${FORCE:-}" ]; then
  echo "build of $COMMIT exists in $SRC/build (FORCE=1 rebuilds)"
else
  mkdir -p "$SRC"
  echo "== extracting frontend/ of $COMMIT"
  # keep node_modules when the lockfile does not change
  find "$SRC" -mindepth 1 -maxdepth 1 ! -name node_modules ! -name .lock.sha -exec rm -rf {} +
  # a partial clone may miss unrelated blobs; only frontend/ is needed
  git --git-dir="$GITDIR" archive "$COMMIT" frontend | tar -x -C "$SRC" --strip-components=1
  test -f "$SRC/package-lock.json"
  echo "$COMMIT" > "$SRC/.commit"
  cd "$SRC"
  export HUSKY=0 VITE_MOCK_API=false VITE_MOCK_SAAS=false
  export NODE_OPTIONS="${NODE_OPTIONS:---max-old-space-size=6144}"
  unset VITE_BACKEND_BASE_URL VITE_BACKEND_HOST || true
  SHA=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -d node_modules ] && [ "$(cat .lock.sha 2>/dev/null)" = "$SHA" ]; then
    echo "== node_modules up to date"
  else
    rm -rf node_modules
    echo "== npm ci (node $(node --version))"
    # no install scripts: no git hooks, no browser downloads. package.json asks for a newer
    # node than 20 but node >= 20.19 builds it.
    nice -n 10 npm ci --ignore-scripts --no-audit --no-fund --engine-strict=false
    echo "$SHA" > .lock.sha
  fi
  echo "== production build"
  nice -n 10 node scripts/make-i18n-translations.cjs
  nice -n 10 npx react-router build
  test -f build/index.html
fi

if [ ! -d "$DIR/tools/node_modules/playwright-core" ] || [ ! -d "$DIR/tools/node_modules/http-proxy" ]; then
  echo "== tools: playwright-core, http-proxy"
  mkdir -p "$DIR/tools"
  cd "$DIR/tools"
  [ -f package.json ] || echo '{"name":"real-ui-tools","private":true,"type":"module"}' > package.json
  nice -n 10 npm install --no-audit --no-fund playwright-core@1.55.1 http-proxy@1.18.1
fi
echo "ready: UI build $SRC/build, tools $DIR/tools/node_modules"
