#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs everything it needs, then runs it.
#   bash scripts/test.sh [pytest args...]
# Needs python3 (3.11+), node 20+ and npm; ../shared beside the repository (the API contract,
# its checker and the real clients); PostgreSQL's server binaries (installed with apt-get when
# missing and run as root). The tests start their own throwaway cluster on 127.0.0.1.
# CI runs exactly this (.ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="$ROOT/../shared"
[ -d "$SHARED/clients" ] || { echo "test.sh: $SHARED/clients is missing; check out shared/ beside the repository" >&2; exit 1; }

step() { echo "== $*"; }

step "python environment (.venv: requirements-test.lock, then this project without its dependencies)"
[ -x .venv/bin/python ] || python3 -m venv .venv
pip_install() { .venv/bin/python -m pip install --quiet --disable-pip-version-check "$@" 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }; }
pip_install -r requirements-test.lock  # exact versions, each file checked against its hash
pip_install --no-deps -e .

step "real clients (a copy of ../shared/clients in .cache/clients; Debian chromium if missing)"
mkdir -p .cache/clients
# copy the scripts, keep an earlier node_modules/.venv when their lock files did not change
(cd "$SHARED/clients" && tar --exclude=node_modules --exclude=.venv -cf - .) | (cd .cache/clients && tar -xf -)
bash .cache/clients/setup.sh
export CONDUIT_CLIENTS_DIR="$ROOT/.cache/clients"

step "newman for RealWorld's own API suite (tests/realworld/package.json, npm ci into .cache/realworld)"
mkdir -p .cache/realworld
if ! cmp -s tests/realworld/package-lock.json .cache/realworld/package-lock.json || ! cmp -s tests/realworld/package.json .cache/realworld/package.json \
   || [ ! -x .cache/realworld/node_modules/.bin/newman ]; then
  cp tests/realworld/package.json tests/realworld/package-lock.json .cache/realworld/
  (cd .cache/realworld && npm ci --no-audit --no-fund --loglevel=error)
fi
export CONDUIT_REALWORLD_DIR="$ROOT/.cache/realworld"

step "PostgreSQL server and nginx (every database test runs on SQLite and on PostgreSQL; nginx balances the deployment test)"
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ -n "${CONDUIT_PG_BIN:-}" ] || missing+=(postgresql)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)  # tests/redis.py: CONDUIT_CACHE_URL tests
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "test.sh: missing ${missing[*]}; install with apt-get (PostgreSQL binaries may also be given as CONDUIT_PG_BIN)" >&2
    exit 1
  fi
fi

step "lint (ruff)"
.venv/bin/ruff check .
.venv/bin/ruff format --check graph db auth tests

step "type check (mypy)"
.venv/bin/mypy graph db auth tests

step "tests (pytest, 3 workers: much of the suite waits on servers and databases)"
# exit 5 is "no test collected": arguments may select tests of only one of the two runs
.venv/bin/pytest -n 3 -m "not browser" "$@" || [ $? -eq 5 ]

# Keystrokes typed into the playground by Chromium arrive garbled when two other workers keep
# both cores busy (a query typed as "e }{ __typena}"): the browser tests run on their own.
step "browser tests (pytest, alone: Chromium typing into the playground)"
.venv/bin/pytest -m browser "$@" || [ $? -eq 5 ]
