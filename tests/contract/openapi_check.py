"""Checks an exchange against the checked-in ``mobile_contract/openapi.json``: operation, status, bodies.

Validation is ``tests.fixtures.contract.Published`` (JSON Schema 2020-12, a referencing registry
for ``#/components/schemas/...``, formats checked); this adds what a recorded exchange needs:
finding the operation by method and concrete path, and the answer by status, as strictly as the
document allows (the status must be declared; a ``default`` answer covers errors only).
"""

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

from tests.fixtures.contract import Published

__all__ = ("CONTRACT", "Contract")

ROOT = Path(__file__).resolve().parents[2] / "mobile_contract"


class Contract:
    def __init__(self, path: Path) -> None:
        self.published = Published(json.loads(path.read_text(encoding="utf-8")))

    @cached_property
    def _templates(self) -> list[tuple[re.Pattern[str], str]]:
        """Path templates, literal ones first so that ``/blobs/{sha}`` never shadows a fixed path."""
        out = []
        for template in self.published.document["paths"]:
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            out.append((re.compile(f"^{pattern}/?$"), template))
        return sorted(out, key=lambda item: item[1].count("{"))

    def operation(self, method: str, path: str) -> dict[str, Any]:
        for pattern, template in self._templates:
            if pattern.match(path):
                operations = self.published.document["paths"][template]
                if method.lower() in operations:
                    return operations[method.lower()]
        raise AssertionError(f"{method} {path}: no such operation in openapi.json")

    def response_for(self, operation: dict[str, Any], status: int) -> dict[str, Any]:
        responses = operation.get("responses", {})
        for key in (str(status), f"{str(status)[0]}XX"):
            if key in responses:
                return responses[key]
        if status >= 400 and "default" in responses:
            return responses["default"]
        raise AssertionError(f"status {status} is not documented (documented: {sorted(responses)})")

    def validate(self, schema: dict[str, Any], instance: Any, what: str) -> None:
        problems = self.published.errors(schema, instance)
        if problems:
            raise AssertionError(f"{what} does not fit its schema: " + "; ".join(problems[:5]))

    def check_request(self, request: dict[str, Any]) -> None:
        operation = self.operation(request["method"], request["path"])
        if "body" not in request:
            return
        content = operation.get("requestBody", {}).get("content", {})
        assert "application/json" in content, f"{request['method']} {request['path']}: no JSON body declared"
        self.validate(content["application/json"]["schema"], request["body"], "the request body")

    def check_response(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        operation = self.operation(request["method"], request["path"])
        documented = self.response_for(operation, response["status"])
        if "body" not in response:
            return
        content = documented.get("content", {})
        assert "application/json" in content, f"status {response['status']}: no JSON body documented"
        self.validate(
            content["application/json"]["schema"], response["body"], f"the {response['status']} answer"
        )


CONTRACT = Contract(ROOT / "openapi.json")
