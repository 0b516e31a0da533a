# Sourced by start.sh and test.sh: a project-local virtualenv with HeatCrew installed in it.
# HEATCREW_EXTRAS picks the optional dependency groups: "" for the service alone, "test" for the
# suite. Every package comes at the version pinned in the lock (requirements.lock, or
# requirements-test.lock with "test"; `bash infra/lock.sh` refreshes them), then HeatCrew itself
# without resolving anything again: a fresh install is the install that was tested.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HEATCREW_VENV:-$ROOT/.venv}"
case "${HEATCREW_EXTRAS:-}" in
  "") lock="$ROOT/requirements.lock" ;;
  test) lock="$ROOT/requirements-test.lock" ;;
  *) echo "HEATCREW_EXTRAS must be empty or 'test', not '${HEATCREW_EXTRAS}'" >&2; return 1 ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# A stamp of pyproject.toml and the lock saves the reinstall when neither changed.
stamp="$VENV/.heatcrew-installed-${HEATCREW_EXTRAS:-base}"
if [ ! -f "$stamp" ] || ! cat "$ROOT/pyproject.toml" "$lock" | cmp -s - "$stamp"; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$lock"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$ROOT"
  cat "$ROOT/pyproject.toml" "$lock" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
