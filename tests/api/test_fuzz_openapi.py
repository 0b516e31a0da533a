"""FUZZ (schemathesis): every operation of the served OpenAPI document, as every demo role.

Each operation gets ``HEATCREW_FUZZ_API_EXAMPLES`` generated requests (default 20), from schemathesis'
positive and negative modes (requests that fit the schema and requests that do not), each sent
with the access token of a role drawn from the demo company (admin, dispatcher1, supervisor1,
tech1, tech2, inspector1), on SQLite and on PostgreSQL (the ``app`` fixture). No answer is 5xx,
and every answer is one the published document declares for the operation: its status, its media
type and its body (schemathesis' conformance checks). Every failure is collected and reported
together, with the request that caused it.

Budget: about 30 s per database on CI's two cores (``HEATCREW_FUZZ_API_EXAMPLES`` raises it).
"""

import os
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests import fuzz_log
from tests.api.helpers import login

pytestmark = [pytest.mark.fuzz, pytest.mark.usefixtures("demo")]

ROLES = ("admin", "dispatcher1", "supervisor1", "tech1", "tech2", "inspector1")
EXAMPLES = int(os.environ.get("HEATCREW_FUZZ_API_EXAMPLES", "20"))
# Operations that may end the session whose token they carry: fuzzed last.
SELF_ENDING = {("POST", "/api/v1/auth/logout")}
# A stream that never ends on its own (every answer it gives is tested in tests/scenarios/test_live.py).
ENDLESS = {("GET", "/api/v1/sync/events")}
# No 5xx, and every answer is one the document declares: its status, media type and body schema.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _negative(operation: Any) -> Any:
    try:
        return operation.as_strategy(GenerationMode.NEGATIVE)
    except Exception:  # an operation with nothing to get wrong (no parameters, no body)
        return st.nothing()


def test_fuzz_openapi_no_server_error(app: Litestar, client: TestClient, database_url: str) -> None:
    tokens = {role: login(client, role, device_id=f"fuzz-{role}")["access_token"] for role in ROLES}
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    failures: dict[str, str] = {}  # the first per operation is enough to find the cause
    requests = 0
    statuses: Counter[int] = Counter()
    started = time.monotonic()
    operations = sorted(
        (
            op
            for op in (result.ok() for result in schema.get_all_operations())
            if (op.method.upper(), op.path) not in ENDLESS
        ),
        key=lambda op: (op.method.upper(), op.path) in SELF_ENDING,
    )
    assert len(operations) > 30  # the whole document, not a slice of it

    for operation in operations:
        # Requests that fit the schema and requests that do not (wrong types, missing fields, ...).
        cases = operation.as_strategy(GenerationMode.POSITIVE) | _negative(operation)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases, role=st.sampled_from(ROLES))
        def run(case: Any, role: str) -> None:
            nonlocal requests
            requests += 1
            response = case.call(headers={"Authorization": f"Bearer {tokens[role]}"})
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except (AssertionError, FailureGroup) as exc:
                label = f"{case.operation.method.upper()} {case.operation.path}"
                failures.setdefault(
                    label,
                    f"{label} as {role}: {response.status_code} {response.text[:300]!r}\n"
                    f"    {case.as_curl_command()}\n    {str(exc)[:300]}",
                )

        run()

    elapsed = time.monotonic() - started
    fuzz_log.report(
        f"FUZZ schemathesis ({database_url.split(':')[0]}): {len(operations)} operations, "
        f"{requests} requests ({EXAMPLES} per operation), "
        f"{elapsed:.1f} s, {len(failures)} failures; statuses {dict(sorted(statuses.items()))}"
    )
    assert not failures, (
        "answers the document does not declare, or 5xx, found by schemathesis:\n"
        + "\n".join(failures.values())
    )
