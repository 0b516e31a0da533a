"""The golden examples: every request a phone makes and the server's answer, as JSON files.

``write(root)`` runs the real application in this process (a fresh SQLite database in a
temporary directory, the demo company, a clock stopped at one winter morning) and plays the
story of ``scenes.py`` against it over HTTP. Everything the server would otherwise make at random
(ids, refresh tokens, the sync epoch) comes from a seeded source for the length of the run, the
signing key is fixed, and the clock does not move, so two runs write the same bytes: a test
regenerates the files and compares. Nothing in request handling knows it is being recorded.

Files land in ``<root>/examples/<area>/<name>.json``, one exchange each (title, description,
request, response); ``index.json`` lists them in story order, ``README.md`` too, for people.
"""

import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from litestar.testing import TestClient

from backend.app import create_app
from backend.clock import ManualClock
from backend.contract import scenes
from backend.contract.recording import Example, Recorder, Sink
from backend.contract.story import Story
from backend.db import make_engine
from backend.db.migrate import upgrade
from backend.demo import seed_demo
from backend.ids import SeededIds, ids_from
from backend.settings import Settings

__all__ = ("EXAMPLES_DIR", "MOMENT", "example_path", "record", "write")

EXAMPLES_DIR = "examples"
#: The server's clock for the whole run: 08:30 in Shanghai on a Monday in the heating season.
MOMENT = datetime(2026, 12, 7, 0, 30, tzinfo=UTC)
# The signing key of the run: the tokens and seals in the examples are signed with it, so they are
# the same on every run. It signs nothing else, anywhere.
EXAMPLE_SECRET = "golden-examples-signing-key-not-a-secret-0000"
SEED = "heatcrew golden examples"
# Password checks cost nothing here: the examples show the login, not Argon2's price.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def example_path(root: Path, name: str) -> Path:
    return root / EXAMPLES_DIR / f"{name}.json"


def record(sink: Sink) -> None:
    """Play the story against a fresh in-process server, handing each example to ``sink``."""
    with tempfile.TemporaryDirectory(prefix="heatcrew-examples-") as scratch:
        var = Path(scratch)
        with ids_from(SeededIds(SEED, start_ms=int(MOMENT.timestamp() * 1000))):
            settings = Settings(
                var_dir=var,
                database_url=f"sqlite:///{var / 'examples.db'}",
                secret_key=EXAMPLE_SECRET,
                auto_migrate=False,
                docs_enabled=False,
            )
            engine = make_engine(settings.effective_database_url)
            upgrade(engine)
            engine.dispose()
            app = create_app(settings, clock=ManualClock(MOMENT), password_hasher=CHEAP_HASHER)
            ctx = app.state.ctx
            try:
                with ctx.db.session() as session:
                    seed_demo(ctx, session)
                with TestClient(app, base_url="http://heatcrew.example") as http:
                    scenes.run(Story(Recorder(http, sink)))
            finally:
                ctx.db.dispose()


def write(root: Path) -> list[Path]:
    """Regenerate ``<root>/examples`` from scratch; answers the files written, the indexes last."""
    recorded: list[tuple[Example, dict[str, Any]]] = []

    def keep(example: Example, exchange: dict[str, Any]) -> None:
        recorded.append((example, exchange))

    record(keep)
    target = root / EXAMPLES_DIR
    shutil.rmtree(target, ignore_errors=True)
    written: list[Path] = []
    index = []
    for example, exchange in recorded:
        path = example_path(root, example.name)
        if path in written:
            raise ValueError(f"two examples are named {example.name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dumps(exchange), encoding="utf-8")
        written.append(path)
        request, response = exchange["request"], exchange["response"]
        entry = {
            "file": f"{example.name}.json",
            "title": example.title,
            "method": request["method"],
            "path": request["path"],
            "status": response["status"],
        }
        if request["path"] == "/api/v1/sync/push" and response["status"] == 200:
            entry["actions"] = [
                {
                    "type": a["type"],
                    "v": a["v"],
                    "status": r["status"],
                    **({"code": r["code"]} if "code" in r else {}),
                }
                for a, r in zip(request["body"]["actions"], response["body"]["results"], strict=True)
            ]
        index.append(entry)
    index_path = target / "index.json"
    index_path.write_text(
        _dumps(
            {
                "description": "Golden examples of the HeatCrew phone API: each file is one request and the "
                "server's answer, recorded from the real server. Listed in the order they were "
                "recorded (one story: later examples use orders and files made by earlier ones).",
                "server_time": MOMENT.isoformat(),
                "examples": index,
            }
        ),
        encoding="utf-8",
    )
    written.append(index_path)
    readme = target / "README.md"
    readme.write_text(_readme(index), encoding="utf-8")
    written.append(readme)
    return written


def _readme(index: list[dict[str, Any]]) -> str:
    """The index as a page to read on GitHub: one table per area, in story order."""
    lines = [
        "# Golden examples of the HeatCrew phone API",
        "",
        "Each file is one request and the server's answer, recorded from the real server at "
        f"{MOMENT.isoformat()} (server time). Generated: do not edit; `index.json` is the same list "
        "for programs. The phone guide is `docs/PHONE.md`.",
    ]
    areas: dict[str, list[dict[str, Any]]] = {}
    for entry in index:
        areas.setdefault(entry["file"].split("/")[0].removesuffix(".json"), []).append(entry)
    for area, entries in areas.items():
        lines += ["", f"## {area}", "", "| example | request | answer |", "|---|---|---|"]
        for entry in entries:
            answer = str(entry["status"])
            if "actions" in entry:
                answer += ": " + ", ".join(
                    a["status"] + (f" / {a['code']}" if "code" in a else "") for a in entry["actions"]
                )
            request = f"`{entry['method']} {entry['path']}`"
            lines.append(f"| [{entry['title']}]({entry['file']}) | {request} | {answer} |")
    return "\n".join(lines) + "\n"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2) + "\n"
