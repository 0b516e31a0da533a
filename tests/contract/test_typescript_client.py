"""The TypeScript reference client, built with ``tsc --strict`` and run by node against a live server.

``mobile_contract/ts`` is what a phone team starts from: it has to install from the npm registry
with its lock, compile strictly against the types generated from the OpenAPI document, and pass
its scenarios (lost answer, gap, waiting photo, resumed upload, expired token, conflict, resent
batch, a document signed with its own canonical JSON) against a real HeatCrew process, seeded
with the demo company, on SQLite and on PostgreSQL.
A payload that does not fit its action type must not compile.

The checked-in `src/api.d.ts` must be what `npm run types` makes of `openapi.json` now.

Skipped only when ``node`` or ``npm`` is missing; with ``HEATCREW_TEST_REQUIRE_NODE=1`` (set by CI
where node exists) that fails instead.
"""

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import mobile_contract
from tests.fixtures.live_server import start_server, stop_server

PACKAGE = Path(mobile_contract.__file__).parent / "ts"
REQUIRE_NODE = os.environ.get("HEATCREW_TEST_REQUIRE_NODE") == "1"
# Short enough that the expired-token scenario waits only seconds for its token to run out, long
# enough that a token outlives the few requests after a refresh on a loaded machine.
ACCESS_TOKEN_TTL = "3"
#: Words from each scenario's title: each must have run and passed.
SCENARIOS = (
    "lost push answer",
    "skipped seq",
    "photo pushed before its upload",
    "expired access token",
    "expired before an upload's HEAD",
    "answers conflict",
    "same batch sent twice",
    "interrupted upload is resumed",
    "document signed with the TypeScript content_sha256",
)
STAMP = PACKAGE / "node_modules" / ".heatcrew-lock-sha256"


def _run(command: list[str], *, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        command, cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} exited with {done.returncode}:\n{output}"
    return output


@pytest.fixture(scope="session")
def built_package() -> Path:
    """``npm ci`` (only when the lock changed since the last install) and a strict ``tsc`` build."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install nodejs npm)"
        if REQUIRE_NODE:
            pytest.fail(f"HEATCREW_TEST_REQUIRE_NODE=1 but {reason}")
        pytest.skip(reason)
    lock = hashlib.sha256((PACKAGE / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        _run(["npm", "ci", "--no-audit", "--no-fund"], timeout=300)
        STAMP.write_text(lock)
    shutil.rmtree(PACKAGE / "dist", ignore_errors=True)
    _run(["npm", "run", "build"])
    return PACKAGE / "dist"


@pytest.fixture
def live_server(database_url: str, tmp_path: Path) -> Iterator[str]:
    """``heatcrew demo`` on this test's database, with access tokens that expire in seconds."""
    env = {
        "HEATCREW_DATABASE_URL": database_url,
        "HEATCREW_VAR_DIR": str(tmp_path / "var"),
        "HEATCREW_ACCESS_TOKEN_TTL": ACCESS_TOKEN_TTL,
    }
    process, base = start_server(tmp_path, ["demo"], env)
    yield base
    stop_server(process)


def test_the_typescript_client_passes_its_scenarios_against_a_live_server(
    built_package: Path, live_server: str
) -> None:
    env = {
        **os.environ,
        "HEATCREW_URL": live_server,
        "HEATCREW_ACCESS_TOKEN_TTL": ACCESS_TOKEN_TTL,
    }
    tests = sorted(str(path.relative_to(PACKAGE)) for path in (built_package / "test").glob("*.test.js"))
    # The scenarios work on different orders and devices: run side by side, they overlap their waits.
    output = _run(["node", "--test", f"--test-concurrency={len(tests)}", *tests], env=env)
    counts = {
        name: int(n) for name, n in re.findall(r"^# (pass|fail|skipped|cancelled) (\d+)$", output, re.M)
    }
    assert counts.get("fail") == 0 and counts.get("cancelled") == 0, output
    assert counts.get("skipped") == 0, f"scenarios were skipped:\n{output}"
    for scenario in SCENARIOS:
        assert re.search(rf"^ok \d+ - .*{scenario}", output, re.M), f"{scenario!r} did not pass:\n{output}"


WELL_TYPED = """
import { OutboxClient } from "{client}";

export function queue(client: OutboxClient): void {
  client.enqueue({
    type: "work_order.complete",
    v: 2,
    payload: { work_order_id: "0193a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d", result: "fixed", parts_used: [] },
  });
}
"""

ILL_TYPED = """
import { OutboxClient } from "{client}";

export function queue(client: OutboxClient): void {
  client.enqueue({ type: "work_order.complete", v: 2, payload: { workOrderId: 42 } });
}
"""


def test_a_payload_that_does_not_fit_its_action_type_does_not_compile(
    built_package: Path, tmp_path: Path
) -> None:
    client = (
        built_package / "src" / "client.js"
    ).as_posix()  # its declarations: only the snippets are checked
    (tmp_path / "package.json").write_text('{"type": "module"}')  # ES modules, like the package
    (tmp_path / "well_typed.ts").write_text(WELL_TYPED.replace("{client}", client))
    (tmp_path / "ill_typed.ts").write_text(ILL_TYPED.replace("{client}", client))
    (tmp_path / "tsconfig.json").write_text(
        "{"
        f'"extends": "{(PACKAGE / "tsconfig.json").as_posix()}",'
        '"compilerOptions": {"noEmit": true, "rootDir": "/", "skipLibCheck": true,'
        f' "typeRoots": ["{(PACKAGE / "node_modules" / "@types").as_posix()}"]}},'
        '"include": ["well_typed.ts", "ill_typed.ts"]'
        "}"
    )
    tsc = PACKAGE / "node_modules" / ".bin" / "tsc"
    done = subprocess.run(
        [str(tsc), "-p", str(tmp_path / "tsconfig.json")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    errors = done.stdout + done.stderr
    assert "well_typed.ts" not in errors, f"a payload that fits its type must compile:\n{errors}"
    assert done.returncode != 0 and "ill_typed.ts" in errors, (
        "`payload: {workOrderId: 42}` compiled as a work_order.complete v2 payload: the generated"
        f" types do not narrow the payload by type and version\n{errors}"
    )


def test_the_checked_in_types_are_what_openapi_typescript_makes_of_the_document(
    built_package: Path, tmp_path: Path
) -> None:
    # The package's own `npm run types`, on a copy laid out as it expects (../openapi.json).
    scratch = tmp_path / "ts"
    (scratch / "src").mkdir(parents=True)
    shutil.copyfile(PACKAGE.parent / "openapi.json", tmp_path / "openapi.json")
    shutil.copyfile(PACKAGE / "package.json", scratch / "package.json")
    (scratch / "node_modules").symlink_to(PACKAGE / "node_modules")
    done = subprocess.run(
        ["npm", "run", "--silent", "types"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    fresh = (scratch / "src" / "api.d.ts").read_text(encoding="utf-8")
    assert fresh == (PACKAGE / "src" / "api.d.ts").read_text(encoding="utf-8"), (
        "mobile_contract/ts/src/api.d.ts is out of date: run `heatcrew contract build`"
    )
