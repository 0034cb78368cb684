#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs everything it needs, then runs it.
#   bash scripts/test.sh [pytest args...]
# Needs python3 (3.11+), node 20+ and npm; ../shared beside the repository (the API contract,
# its checker and the real clients). CI runs exactly this (.ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHARED="$ROOT/../shared"
[ -d "$SHARED/clients" ] || { echo "test.sh: $SHARED/clients is missing; check out shared/ beside the repository" >&2; exit 1; }

step() { echo "== $*"; }

step "python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 | { grep -v "^WARNING: Location 'file:" || true; }

step "real clients (a copy of ../shared/clients in .cache/clients; Debian chromium if missing)"
mkdir -p .cache/clients
# copy the scripts, keep an earlier node_modules/.venv when their lock files did not change
(cd "$SHARED/clients" && tar --exclude=node_modules --exclude=.venv -cf - .) | (cd .cache/clients && tar -xf -)
bash .cache/clients/setup.sh
export CONDUIT_CLIENTS_DIR="$ROOT/.cache/clients"

step "lint (ruff)"
.venv/bin/ruff check .
.venv/bin/ruff format --check graph db auth tests

step "type check (mypy)"
.venv/bin/mypy graph db auth

step "tests (pytest)"
.venv/bin/pytest "$@"
