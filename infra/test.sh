#!/usr/bin/env bash
# Run the whole test suite. The tests start moto_server themselves (unless HEATCREW_TEST_S3_ENDPOINT
# is set), use the PostgreSQL server at 127.0.0.1:5432 when it answers, and drive Chromium when
# it is installed. Extra arguments go to pytest.
set -euo pipefail
HEATCREW_EXTRAS="test" source "$(dirname "$0")/dev-env.sh"
cd "$ROOT"
exec python -m pytest "$@"
