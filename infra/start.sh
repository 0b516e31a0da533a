#!/usr/bin/env bash
# Start HeatCrew on its embedded defaults (SQLite and blobs under ./var) with the demo company.
# Extra arguments go to `heatcrew demo` (e.g. --port 8080).
set -euo pipefail
HEATCREW_EXTRAS="" source "$(dirname "$0")/dev-env.sh"
cd "$ROOT"
exec heatcrew demo "$@"
