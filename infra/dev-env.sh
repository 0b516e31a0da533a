# Sourced by start.sh and test.sh: a project-local virtualenv with HeatCrew installed in it.
# HEATCREW_EXTRAS picks the optional dependency groups ("" for the service alone, "test").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HEATCREW_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
spec="$ROOT"
[ -n "${HEATCREW_EXTRAS:-}" ] && spec="$ROOT[$HEATCREW_EXTRAS]"
# A stamp of pyproject.toml saves the reinstall when nothing changed.
stamp="$VENV/.heatcrew-installed-${HEATCREW_EXTRAS:-base}"
if [ ! -f "$stamp" ] || ! cmp -s "$ROOT/pyproject.toml" "$stamp"; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
  cp "$ROOT/pyproject.toml" "$stamp"
fi
export PATH="$VENV/bin:$PATH"
