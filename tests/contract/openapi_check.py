"""Checks an exchange against ``mobile_contract/openapi.json``: the operation, its status, its bodies.

OpenAPI 3.1 schemas are JSON Schema 2020-12, so the document is registered as one resource and
every ``#/components/schemas/...`` reference resolves inside it. The check is as strict as the
document allows: the operation must exist for the method and path, the status must be documented
(a ``default`` answer covers errors only), a JSON body must be declared and validate, with formats
checked.
"""

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ("CONTRACT", "Contract")

ROOT = Path(__file__).resolve().parents[2] / "mobile_contract"
DOCUMENT_URI = "urn:heatcrew:openapi"


class Contract:
    def __init__(self, path: Path) -> None:
        self.document = json.loads(path.read_text(encoding="utf-8"))

    @cached_property
    def registry(self) -> Registry:
        resource = Resource(contents=self.document, specification=DRAFT202012)
        return Registry().with_resource(DOCUMENT_URI, resource)

    @cached_property
    def _templates(self) -> list[tuple[re.Pattern[str], str]]:
        """Path templates, literal ones first so that ``/blobs/{sha}`` never shadows a fixed path."""
        out = []
        for template in self.document["paths"]:
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            out.append((re.compile(f"^{pattern}/?$"), template))
        return sorted(out, key=lambda item: item[1].count("{"))

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        for pattern, template in self._templates:
            if pattern.match(path):
                operations = self.document["paths"][template]
                if method.lower() in operations:
                    return template, operations[method.lower()]
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
        # The operation's schema is a piece of the document: its local references point into it.
        anchored = json.loads(json.dumps(schema).replace('"#/', f'"{DOCUMENT_URI}#/'))
        validator = Draft202012Validator(
            anchored, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        error: ValidationError | None = best_match(validator.iter_errors(instance))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise AssertionError(f"{what} does not fit its schema at {where}: {error.message}")

    def check_request(self, request: dict[str, Any]) -> None:
        _, operation = self.operation(request["method"], request["path"])
        if "body" not in request:
            return
        content = operation.get("requestBody", {}).get("content", {})
        assert "application/json" in content, f"{request['method']} {request['path']}: no JSON body declared"
        self.validate(content["application/json"]["schema"], request["body"], "the request body")

    def check_response(self, request: dict[str, Any], response: dict[str, Any]) -> None:
        _, operation = self.operation(request["method"], request["path"])
        documented = self.response_for(operation, response["status"])
        if "body" not in response:
            return
        content = documented.get("content", {})
        assert "application/json" in content, f"status {response['status']}: no JSON body documented"
        self.validate(
            content["application/json"]["schema"], response["body"], f"the {response['status']} answer"
        )


CONTRACT = Contract(ROOT / "openapi.json")
