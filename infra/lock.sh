#!/usr/bin/env bash
# Refresh the lock files from pyproject.toml: requirements-test.lock (the service and the `test`
# extra) first, then requirements.lock (the service alone) constrained to the same versions, so
# start.sh and test.sh install the same packages. Python 3.11 on Linux; uv runs from a scratch venv.
# Extra arguments go to both `uv pip compile` runs (e.g. --upgrade-package sqlalchemy).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/python" -m pip install --quiet --disable-pip-version-check uv
compile=("$tools/bin/uv" pip compile "$ROOT/pyproject.toml" --quiet --python-version 3.11
         --python-platform x86_64-unknown-linux-gnu --no-header --annotation-style line "$@")
"${compile[@]}" --extra test -o "$ROOT/requirements-test.lock"
"${compile[@]}" -c "$ROOT/requirements-test.lock" -o "$ROOT/requirements.lock"
echo "locked: requirements.lock, requirements-test.lock"
