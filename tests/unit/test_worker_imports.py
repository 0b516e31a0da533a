"""A worker holds only what serving needs: libraries for rare work load with their first use."""

import json
import subprocess
import sys
from pathlib import Path

__all__ = ()

ROOT = Path(__file__).resolve().parents[2]

_PROBE = """
import json, os, sys, tempfile
os.environ["HEATCREW_VAR_DIR"] = tempfile.mkdtemp()
os.environ["HEATCREW_DATABASE_URL"] = "sqlite:///" + os.environ["HEATCREW_VAR_DIR"] + "/t.db"
os.environ["HEATCREW_SECRET_KEY"] = "worker-imports-test-key-" + "x" * 24
import backend.cli  # a worker spawned by `heatcrew serve` imports the command line first
import backend.app
from backend.evidence.pdf import check_font
backend.app.create_app(backend.app.Settings.from_env())
started = check_font()
import jwt.algorithms
rare = ("reportlab", "cryptography", "rich", "pygments", "alembic", "mako", "PIL")
print(json.dumps({"loaded": sorted(m for m in rare if m in sys.modules),
                  "font": started, "asymmetric_jwt": jwt.algorithms.has_crypto}))
"""


def test_a_started_worker_holds_no_pdf_layout_migrations_crypto_console_colours_or_pillow() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"loaded": [], "font": True, "asymmetric_jwt": False}
