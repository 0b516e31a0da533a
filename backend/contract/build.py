"""``heatcrew contract build``: write the published files of the mobile contract.

Everything under ``mobile_contract/`` that a phone developer builds from is made here, from the
code, so that it cannot say something the server does not do:

- ``openapi.json``: the document served at ``/schema/openapi.json`` (:mod:`backend.contract.openapi`);
- ``schemas/actions/<type>.v<N>.json``: one self-contained JSON Schema (2020-12) per action type
  and version, the envelope with its payload;
- ``schemas/documents/<type>.json``: the content of each signed document type;
- ``ts/src/api.d.ts``: TypeScript types generated from ``openapi.json`` by openapi-typescript
  (pinned in ``ts/package-lock.json``; needs Node and npm);
- the golden examples and the canonical-JSON test vectors, where those generators exist.

``tests/contract/test_published_files.py`` rebuilds into a scratch copy and fails when anything
differs from what is checked in.
"""

import importlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from backend.contract.openapi import envelope_name, published
from mobile_contract.actions import ACTION_TYPES
from mobile_contract.documents import DOCUMENT_CONTENT

__all__ = ("CONTRACT_ROOT", "build", "document", "json_text")

CONTRACT_ROOT = Path(__file__).resolve().parents[2] / "mobile_contract"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# Generators of further published files: each module has ``write(root) -> list[Path]``.
_GENERATORS = ("backend.contract.vectors", "backend.contract.examples")


def json_text(value: Any) -> str:
    """Stable, reviewable JSON: sorted keys, two-space indent, Chinese kept, a final newline."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def document() -> dict[str, Any]:
    """The published OpenAPI document of an app on default settings (no database is opened)."""
    from backend.app import create_app
    from backend.settings import Settings

    with tempfile.TemporaryDirectory() as scratch:
        app = create_app(Settings(var_dir=Path(scratch), database_url=f"sqlite:///{scratch}/unused.db"))
        try:
            return published(app.openapi_schema.to_schema(), app)
        finally:
            app.state.ctx.db.dispose()


def build(root: Path = CONTRACT_ROOT, *, typescript: bool = True) -> list[Path]:
    """Write every published file under ``root``; returns the files written."""
    written: list[Path] = []
    spec = document()
    written.append(_write(root / "openapi.json", json_text(spec)))
    written += _write_schemas(root / "schemas")
    if typescript:
        written.append(_typescript(root))
    for name in _GENERATORS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        written += module.write(root)
    return written


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _standalone(struct: Any, *, title: str) -> dict[str, Any]:
    """msgspec's schema of ``struct`` (a ``$ref`` into its ``$defs``), as a document of its own."""
    return {"$schema": _DIALECT, "title": title, **msgspec.json.schema(struct)}


def _write_schemas(folder: Path) -> list[Path]:
    if folder.exists():
        shutil.rmtree(folder)  # a removed action version leaves no stale file behind
    written = []
    for (action_type, version), payload in sorted(ACTION_TYPES.items()):
        payload_schema = msgspec.json.schema(payload)
        defs = payload_schema.get("$defs", {})
        envelope = {
            "$schema": _DIALECT,
            "$id": f"urn:heatcrew:contract:actions:{action_type}.v{version}",
            "title": envelope_name(action_type, version),
            "description": f"A queued `{action_type}` action, version {version}, as pushed to the sync.",
            "type": "object",
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "seq": {"type": "integer", "minimum": 1, "maximum": 9007199254740991},
                "type": {"const": action_type},
                "v": {"const": version},
                "occurred_at": {"type": "string", "format": "date-time"},
                "payload": {"$ref": payload_schema["$ref"]},
            },
            "required": ["id", "seq", "type", "v", "occurred_at", "payload"],
            "$defs": defs,
        }
        written.append(_write(folder / "actions" / f"{action_type}.v{version}.json", json_text(envelope)))
    for doc_type, content in sorted(DOCUMENT_CONTENT.items()):
        schema = _standalone(content, title=f"{doc_type} content")
        schema["$id"] = f"urn:heatcrew:contract:documents:{doc_type}"
        written.append(_write(folder / "documents" / f"{doc_type}.json", json_text(schema)))
    return written


def _typescript(root: Path) -> Path:
    """``ts/src/api.d.ts`` by the pinned openapi-typescript (installed with ``npm ci`` if needed)."""
    package = root / "ts"
    if not (package / "package.json").exists():
        raise RuntimeError(
            f"{package}/package.json is missing: the TypeScript package is part of the contract"
        )
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to generate the TypeScript types (Node 20 or newer)")
    if not (package / "node_modules" / ".bin" / "openapi-typescript").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=package, check=True, capture_output=True)
    target = package / "src" / "api.d.ts"
    target.parent.mkdir(parents=True, exist_ok=True)
    # The package's own `npm run types` (../openapi.json -> src/api.d.ts), so that its options live
    # in one place: a field with a default stays optional to send, a free-form object takes anything.
    subprocess.run([npm, "run", "--silent", "types"], cwd=package, check=True, capture_output=True)
    return target
