"""Every error answer the suite saw is declared by its operation in the published document.

Runs after every other test (``after_everything``): ``tests.fixtures.answers`` recorded each
4xx/5xx answer of every app the tests made. An answer the document does not declare — a status
or a code — fails here, naming the operation, so a phone developer reading the document is never
surprised by the server. Run alone, it still checks the answers it provokes itself.
"""

import uuid

import pytest
from litestar.testing import TestClient

from tests.api.helpers import auth, login
from tests.fixtures import answers

pytestmark = [pytest.mark.after_everything, pytest.mark.usefixtures("demo")]


def test_every_error_answer_seen_is_declared(client: TestClient) -> None:
    tokens = login(client, "tech1")
    assert client.get(f"/api/v1/work-orders/{uuid.uuid4()}", headers=auth(tokens)).status_code == 404
    assert client.get("/api/v1/users", headers=auth(tokens)).status_code == 403
    assert client.get("/api/v1/sync/pull").status_code == 401
    seen = {a for a in answers.SEEN if a[2] in (401, 403, 404)}
    assert {("GET", "/api/v1/work-orders/{order_id}", 404, "not_found")} <= seen

    document = client.get("/schema/openapi.json").json()
    missing = answers.undeclared(document)
    assert not missing, "answers the published document does not declare:\n" + "\n".join(missing)
