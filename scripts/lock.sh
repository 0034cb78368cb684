#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml with pip-compile (pip-tools, in a throwaway
# venv), every pin with the hashes of its files on PyPI:
#   requirements.lock       the server's dependencies (the Dockerfile installs these)
#   requirements-test.lock  the same pins plus the `test` extra (scripts/test.sh, so CI)
# The locks are for Python 3.11 on Linux, the Dockerfile's and CI's Python.
#   bash scripts/lock.sh                              # after editing pyproject.toml: keeps every pin that still fits
#   bash scripts/lock.sh --upgrade-package starlette  # one package to the newest release its range allows
#   bash scripts/lock.sh --upgrade                    # every package to the newest release its range allows
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "lock.sh: needs python3 3.11, the Python of the Dockerfile and CI" >&2; exit 1; }
TOOLS="${TMPDIR:-/tmp}/conduit-pip-tools"
# PyPI itself, whatever index or mirror this machine's pip is set up with: the hashes must be
# those of the files the Dockerfile and CI download
export PIP_CONFIG_FILE=/dev/null
unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS
[ -x "$TOOLS/bin/pip-compile" ] || { python3 -m venv "$TOOLS" && "$TOOLS/bin/pip" install --quiet 'pip-tools~=7.7.0'; }
export CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh"
compile=("$TOOLS/bin/pip-compile" --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links)
"${compile[@]}" "$@" --output-file requirements.lock pyproject.toml
"${compile[@]}" "$@" --extra test --constraint requirements.lock --output-file requirements-test.lock pyproject.toml
echo "lock.sh: wrote requirements.lock and requirements-test.lock"
