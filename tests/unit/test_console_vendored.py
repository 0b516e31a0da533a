"""The vendored htmx is the file its record names (infra/vendor-htmx.sh wrote both)."""

import hashlib
import json
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "backend" / "console" / "static"


def test_vendored_htmx_matches_its_recorded_sha256_and_version() -> None:
    record = json.loads((STATIC / "VENDORED.json").read_text())["htmx.min.js"]
    data = (STATIC / "htmx.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert record["package"] == "htmx.org"
    assert record["npm_integrity"].startswith("sha512-")
    assert f'version:"{record["version"]}"' in data.decode() or record["version"] in data.decode()
