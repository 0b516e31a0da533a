#!/usr/bin/env bash
# Run the whole test suite. The tests start moto_server themselves (unless HEATCREW_TEST_S3_ENDPOINT
# is set), use the PostgreSQL server at 127.0.0.1:5432 when it answers, and drive Chromium when
# it is installed. Extra arguments go to pytest. The tests run in HEATCREW_TEST_WORKERS processes
# (pytest-xdist, default 2: this machine's cores), each file in one of them; each process has its
# own PostgreSQL database, SQLite template and moto buckets.
set -euo pipefail
HEATCREW_EXTRAS="test" source "$(dirname "$0")/dev-env.sh"
cd "$ROOT"
exec python -m pytest -n "${HEATCREW_TEST_WORKERS:-2}" --dist loadfile "$@"
