"""The published OpenAPI document: Litestar's own, completed with what only the contract knows.

Litestar builds paths, parameters and the schemas of the structs in handler signatures. It cannot
see that a push envelope's ``payload`` is decoded by its ``(type, v)``, that ``Change.data`` is a
view chosen by ``entity``, or which ``{code, message, detail}`` errors each operation answers.
:func:`published` adds those from the contract itself (``mobile_contract``) and the handlers'
``answers`` declarations, so the document says what the server does:

- ``ActionEnvelope`` is a ``oneOf`` of one arm per ``(type, v)``, each pinning ``type`` and ``v``
  with ``const``, so a generated client narrows the payload by type;
- every payload, document content and pull view has its schema, made by msgspec from the very
  structs the server decodes with;
- every operation lists each error status it answers, with the codes it may carry;
- binary bodies, public operations and descriptions are declared.

The same document is served at ``/schema/openapi.json`` and written to
``mobile_contract/openapi.json`` by ``heatcrew contract build``.
"""

import copy
import re
from collections.abc import Iterable
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.routes import HTTPRoute

from backend.app_version import KEPT_FOR_OLD_APPS, UNCHECKED_PREFIXES
from backend.contract.answers import Answers
from mobile_contract.actions import ACTION_TYPES
from mobile_contract.documents import DOCUMENT_CONTENT
from mobile_contract.errors import PUSH_ANSWER_CODES, ErrorBody, ErrorCode
from mobile_contract.reference import SlaPolicy
from mobile_contract.sync import ActionEnvelope, EndEvent, HeadEvent, OrderNow
from mobile_contract.views import (
    CatalogueView,
    HouseholdView,
    InstrumentsView,
    RedoRequestView,
    RevisitView,
    WorkOrderView,
)

__all__ = ("ContractJson", "envelope_name", "operation_handlers", "published", "shared_answers")

REF = "#/components/schemas/{name}"
_E = ErrorCode

# What every operation of a sort may answer, whatever its handler does.
_REQUEST_SHAPE = (_E.bad_request, _E.invalid_input, _E.invalid_body, _E.text_with_nul)
_BODY_SHAPE = (_E.malformed_json, _E.json_too_deep, _E.client_disconnected)
_AUTHENTICATION = (
    _E.not_authenticated,
    _E.invalid_token,
    _E.token_expired,
    _E.session_revoked,
    _E.device_revoked,
    _E.user_disabled,
    _E.device_mismatch,
)

#: ``Change`` arms: (entity, id or None for any, the view of ``data``).
_CHANGE_VIEWS: tuple[tuple[str, str | None, type], ...] = (
    ("work_order", None, WorkOrderView),
    ("household", None, HouseholdView),
    ("revisit", None, RevisitView),
    ("redo_request", None, RedoRequestView),
    ("reference", "sla_policy", SlaPolicy),
    ("reference", "catalogue", CatalogueView),
    ("reference", "instruments", InstrumentsView),
)

_STATUS_TEXT = {
    400: "The request is not valid",
    401: "Not authenticated (no, expired or revoked token)",
    403: "Not allowed for your role or for this object",
    404: "No such object (or not one you may see)",
    405: "Method not allowed",
    408: "The upload stalled",
    409: "Conflicts with the object's state",
    413: "The body is too large",
    415: "The body's media type is not JSON",
    422: "The content was refused",
    426: "This app version is too old for this request",
    429: "Too many requests; wait for Retry-After",
    500: "The server failed; the request was not applied",
    503: "Unavailable for now; send the same request again after Retry-After",
}


def envelope_name(action_type: str, version: int) -> str:
    """``work_order.complete`` v2 → ``WorkOrderCompleteV2Action``."""
    words = re.split(r"[._]", action_type)
    return "".join(word.capitalize() for word in words) + f"V{version}Action"


def published(spec: dict[str, Any], app: Litestar) -> dict[str, Any]:
    """Complete Litestar's document ``spec`` (as a dict) for ``app``; ``spec`` is not changed."""
    doc = copy.deepcopy(spec)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    _add_contract_schemas(schemas)
    _type_push(schemas)
    _type_change(schemas)
    _type_documents(schemas)
    handlers = operation_handlers(app)
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in {"get", "put", "post", "patch", "delete", "head"}:
                continue
            handler = handlers[(method.upper(), path)]
            operation["operationId"] = _operation_id(handler)  # the description is the docstring
            _declare_security(operation, handler)
            _declare_errors(operation, handler, path)
            _declare_versioning(operation, path)
    _declare_binary(doc)
    _declare_events(doc)
    return doc


def operation_handlers(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    """``(METHOD, path as in the document)`` → the route handler that serves it."""
    found: dict[tuple[str, str], HTTPRouteHandler] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (handler, _) in route.route_handler_map.items():
            if handler.resolve_include_in_schema():
                found[(str(method).upper(), route.path_format or "/")] = handler
    return found


def shared_answers(handler: HTTPRouteHandler, path: str, *, has_body: bool) -> Answers:
    """The errors every operation of this sort may answer (the handler adds its own)."""
    opt = handler.opt
    pairs: list[tuple[int, ErrorCode]] = [(400, code) for code in _REQUEST_SHAPE]
    if has_body and not opt.get("binary_body"):
        pairs += [(400, code) for code in _BODY_SHAPE]
        pairs += [(413, _E.body_too_large), (415, _E.unsupported_media_type)]
    if not opt.get("exclude_from_auth"):
        pairs += [(401, code) for code in _AUTHENTICATION]
    if handler.resolve_guards():
        pairs.append((403, _E.forbidden))
    if "{" in path:
        pairs.append((404, _E.not_found))
    if not path.startswith("/health"):
        pairs.append((503, _E.database_unavailable))
    if not path.startswith(UNCHECKED_PREFIXES):
        pairs.append((400, _E.invalid_app_version))
        if not {(str(m).upper(), path) for m in handler.http_methods} <= KEPT_FOR_OLD_APPS:
            pairs.append((426, _E.app_upgrade_required))
    pairs.append((500, _E.internal_error))
    return tuple(pairs)


class ContractJson(OpenAPIRenderPlugin):
    """Serves :func:`published` at ``/schema/openapi.json`` (made once, on first request)."""

    def __init__(self, app_ref: list[Litestar]) -> None:
        super().__init__(path="/openapi.json", media_type="application/vnd.oai.openapi+json")
        self._app_ref = app_ref
        self._rendered: bytes | None = None

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = msgspec.json.encode(published(openapi_schema, self._app_ref[0]))
        return self._rendered


# ------------------------------------------------------------------ schemas


def _msgspec_components(types: Iterable[Any]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(list(types), ref_template=REF)
    return components


def _add_contract_schemas(schemas: dict[str, Any]) -> None:
    """The contract's structs, as msgspec (which decodes them) describes them."""
    types: list[Any] = [*ACTION_TYPES.values(), *DOCUMENT_CONTENT.values(), ErrorBody, OrderNow]
    types += [HeadEvent, EndEvent]
    types += [view for _, _, view in _CHANGE_VIEWS]
    for name, schema in _msgspec_components(types).items():
        if name == "ErrorBody":
            continue
        schemas[name] = schema
    schemas["ErrorCode"] = {
        "type": "string",
        "enum": sorted(code.value for code in ErrorCode if code not in PUSH_ANSWER_CODES),
        "description": "Stable machine code of an error; clients branch on this, never on the message.",
    }
    schemas["AnswerCode"] = {
        "type": "string",
        "enum": sorted(code.value for code in ErrorCode if code != _E.internal_error),
        "description": (
            "Code of a refused or waiting action (`ActionResult.code`): one of the push answers "
            "(`invalid_payload`, `blob_missing`, `gap`…) or the code of the rule that refused it."
        ),
    }
    schemas["Error"] = {
        "title": "Error",
        "description": "The body of every 4xx and 5xx answer.",
        "type": "object",
        "properties": {
            "code": {"$ref": REF.format(name="ErrorCode")},
            "message": {"type": "string", "description": "For people; may be reworded or translated."},
            "detail": {
                "description": (
                    "Structured extra: the limit exceeded, the fields that failed, the allowed moves; "
                    "`{retryable: true}` on a 503 that will pass."
                )
            },
        },
        "required": ["code", "message", "detail"],
    }


def _type_push(schemas: dict[str, Any]) -> None:
    base = _msgspec_components([ActionEnvelope])["ActionEnvelope"]
    arms = []
    for (action_type, version), payload in sorted(ACTION_TYPES.items()):
        name = envelope_name(action_type, version)
        properties = dict(base["properties"])
        properties["type"] = {"const": action_type}
        properties["v"] = {"const": version}
        properties["payload"] = {"$ref": REF.format(name=payload.__name__)}
        schemas[name] = {
            "title": name,
            "description": f"`{action_type}` version {version}. {_first_line(payload)}".strip(),
            "type": "object",
            "properties": properties,
            "required": ["id", "seq", "type", "v", "occurred_at", "payload"],
        }
        arms.append({"$ref": REF.format(name=name)})
    schemas["ActionEnvelope"] = {
        "title": "ActionEnvelope",
        "description": (
            "One queued action. Its `payload` is decoded by `(type, v)`: one arm per action type and "
            "version. An unknown type or version is answered `rejected` (`unknown_action_type`, "
            "`unsupported_action_version`) and the queue moves on."
        ),
        "oneOf": arms,
    }
    result = schemas["ActionResult"]
    result["properties"]["code"] = {"oneOf": [{"$ref": REF.format(name="AnswerCode")}, {"type": "null"}]}
    result["properties"]["current"] = {
        "oneOf": [{"$ref": REF.format(name="OrderNow")}, {"type": "null"}],
        "description": "The order as it is now, with a `conflict`.",
    }
    result["properties"]["missing"] = {
        "oneOf": [{"type": "array", "items": _sha256_schema()}, {"type": "null"}],
        "description": "The files to upload first, with `waiting` / `blob_missing`.",
    }
    if "SyncStatus" in schemas:
        refused = schemas["RefusedAction"]["properties"]
        refused["code"] = {"oneOf": [{"$ref": REF.format(name="AnswerCode")}, {"type": "null"}]}
        refused["current"] = {"oneOf": [{"$ref": REF.format(name="OrderNow")}, {"type": "null"}]}


def _type_change(schemas: dict[str, Any]) -> None:
    base = schemas["Change"]
    arms = []
    for entity, fixed_id, view in _CHANGE_VIEWS:
        name = f"{_camel(entity)}{_camel(fixed_id) if fixed_id else ''}Change"
        where = f", id `{fixed_id}`" if fixed_id else ""
        properties = dict(base["properties"])
        properties["entity"] = {"const": entity}
        properties["op"] = {"const": "upsert"}
        properties["data"] = {"$ref": REF.format(name=view.__name__)}
        if fixed_id:
            properties["id"] = {"const": fixed_id}
        schemas[name] = {
            "title": name,
            "description": f"entity `{entity}`{where}: {_first_line(view)}",
            "type": "object",
            "properties": properties,
            "required": ["entity", "id", "op", "version", "data"],
        }
        arms.append({"$ref": REF.format(name=name)})
    removal = dict(base["properties"])
    removal["entity"] = {"type": "string", "enum": sorted({entity for entity, _, _ in _CHANGE_VIEWS})}
    removal["op"] = {"const": "remove"}
    removal["data"] = {"type": "null"}
    schemas["RemoveChange"] = {
        "title": "RemoveChange",
        "description": "The object left your scope (or was removed): drop it from the phone.",
        "type": "object",
        "properties": removal,
        "required": ["entity", "id", "op", "version"],
    }
    arms.append({"$ref": REF.format(name="RemoveChange")})
    schemas["Change"] = {
        "title": "Change",
        "description": "One change of the pull feed; `data` is the view named by `entity` (and `id`).",
        "oneOf": arms,
    }


def _type_documents(schemas: dict[str, Any]) -> None:
    """A document's ``content`` is its type's struct; a measurement record's is the payload sent."""
    contents = [{"$ref": REF.format(name=struct.__name__)} for struct in DOCUMENT_CONTENT.values()]
    contents.append({"$ref": REF.format(name="MeasurementV1")})
    if "DocumentRead" in schemas:
        schemas["DocumentRead"]["properties"]["content"] = {
            "anyOf": contents,
            "description": "What was signed: the content struct of the document's `type`.",
        }


def _sha256_schema() -> dict[str, Any]:
    return {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256, lower-case hex."}


def _first_line(struct: type) -> str:
    return (struct.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")


def _camel(word: str) -> str:
    return "".join(part.capitalize() for part in word.split("_"))


# ------------------------------------------------------------------ operations


def _operation_id(handler: HTTPRouteHandler) -> str:
    owner = handler.owner
    tags = getattr(owner, "tags", None) or ["api"]
    prefix = "".join(word.capitalize() for word in re.split(r"[\s_-]+", tags[0]))
    name = handler.handler_name
    return prefix[0].lower() + prefix[1:] + _camel(name)


# semver.org's expression for a semantic version, with ASCII digits ([0-9], never Unicode ones).
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


def _declare_versioning(operation: dict[str, Any], path: str) -> None:
    """The phone's ``X-App-Version`` header, on every operation that reads it (``app_version``),
    and a string schema for the response headers Litestar leaves without one (``Deprecation``)."""
    for response in operation.get("responses", {}).values():
        for header in response.get("headers", {}).values():
            header.setdefault("schema", {"type": "string"})
    if path.startswith(UNCHECKED_PREFIXES):
        return
    operation.setdefault("parameters", []).append(
        {
            "name": "X-App-Version",
            "in": "header",
            "required": False,
            "description": "The phone app's semantic version (`2.3.1`); send it on every request. Not a "
            "semantic version: 400 `invalid_app_version`. Older than the server's minimum: 426 "
            "`app_upgrade_required`, except on login, refresh, logout, uploads, push and sync status. "
            "Without it the request is not checked.",
            "schema": {"type": "string", "maxLength": 64, "pattern": SEMVER_PATTERN, "examples": ["2.3.1"]},
        }
    )


def _declare_security(operation: dict[str, Any], handler: HTTPRouteHandler) -> None:
    if handler.opt.get("exclude_from_auth"):
        operation["security"] = []
    else:
        operation["security"] = [{"bearer": []}]


def _declare_errors(operation: dict[str, Any], handler: HTTPRouteHandler, path: str) -> None:
    declared: dict[int, set[str]] = {}
    has_body = "requestBody" in operation or bool(handler.opt.get("binary_body"))
    pairs = shared_answers(handler, path, has_body=has_body) + tuple(handler.opt.get("answers", ()))
    for status, code in pairs:
        declared.setdefault(status, set()).add(code.value)
    responses = operation.setdefault("responses", {})
    for key in [k for k in responses if k.isdigit() and int(k) >= 400]:
        del responses[key]  # Litestar's generic {status_code, detail, extra}: not what we send
    head = "HEAD" in handler.http_methods
    for status in sorted(declared):
        codes = sorted(declared[status])
        if head:  # a HEAD answer has no body: the status is all a client gets
            responses[str(status)] = {
                "description": f"{_STATUS_TEXT.get(status, 'Error')} (no body; a GET would say "
                + ", ".join(f"`{c}`" for c in codes)
                + ")",
                "x-heatcrew-codes": codes,
                **({"headers": _UPLOAD_OFFSET} if status == 404 else {}),
            }
            continue
        answer: dict[str, Any] = {
            "description": f"{_STATUS_TEXT.get(status, 'Error')}: " + ", ".join(f"`{c}`" for c in codes),
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [
                            {"$ref": REF.format(name="Error")},
                            {"type": "object", "properties": {"code": {"enum": codes}}},
                        ]
                    }
                }
            },
        }
        if status in {429, 503}:
            answer["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before sending again.",
                    "schema": {"type": "integer"},
                }
            }
        responses[str(status)] = answer


def _declare_upload_answers(paths: dict[str, Any]) -> None:
    """The success answers of an upload, one per status (Litestar sees one status and a union)."""
    stored = {"application/json": {"schema": {"$ref": "#/components/schemas/BlobStored"}}}
    held = {
        "description": "The company already holds the file: nothing was read or stored.",
        "content": stored,
    }
    put = paths.get("/api/v1/blobs/{sha256}", {}).get("put")
    if put:
        put["responses"]["201"] = {"description": "Verified, checked and stored.", "content": stored}
        put["responses"]["200"] = held
        put["responses"]["202"] = {
            "description": "A piece: `Upload-Length` is not reached; `Upload-Offset` says how much is held.",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/UploadProgress"}}},
        }
    complete = paths.get("/api/v1/blobs/{sha256}/complete", {}).get("post")
    if complete:
        complete["responses"]["200"] = held


_UPLOAD_OFFSET = {
    "Upload-Offset": {
        "description": "Bytes of your unfinished upload the server holds: resume from here.",
        "schema": {"type": "integer"},
    },
    "Upload-Expires": {
        "description": "When that unfinished upload is dropped (HTTP-date).",
        "schema": {"type": "string"},
    },
}


def _declare_binary(doc: dict[str, Any]) -> None:
    """Bodies that are files, not JSON."""
    paths = doc["paths"]
    blob = paths.get("/api/v1/blobs/{sha256}", {})
    if "put" in blob:
        blob["put"]["requestBody"] = {
            "required": True,
            "description": "The file's bytes (or, with `?offset=N`, the bytes from N on).",
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                }
            },
        }
    _declare_upload_answers(paths)
    for item in paths.values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") == "sha256":
                    parameter["schema"] = _sha256_schema()
    variant = paths.get("/api/v1/blobs/{sha256}/{variant}", {}).get("get")
    if variant:
        for parameter in variant.get("parameters", []):
            if parameter.get("name") == "variant":
                parameter["schema"] = {"type": "string", "enum": ["thumb", "display", "original"]}
        variant["responses"]["200"] = {
            "description": "`thumb` and `display`: a derived JPEG copy; `original`: the bytes as uploaded.",
            "content": {
                "image/jpeg": {"schema": {"type": "string", "contentMediaType": "image/jpeg"}},
                "application/octet-stream": {
                    "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                },
            },
        }
    _declare_reports(paths)
    for path, item in paths.items():
        if path.endswith("/pdf") and "get" in item:
            item["get"]["responses"]["200"] = {
                "description": "The document as a PDF.",
                "content": {
                    "application/pdf": {"schema": {"type": "string", "contentMediaType": "application/pdf"}}
                },
            }


def _declare_reports(paths: dict[str, Any]) -> None:
    """The reports' charts (SVG) and exports (CSV, XLSX): files, with their names enumerated."""
    from backend.reports.exports import CONTENT_TYPES, KINDS
    from backend.reports.kpis import KPI_NAMES

    def name_param(operation: dict[str, Any], name: str, values: list[str]) -> None:
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "path" and parameter.get("name") == name:
                parameter["schema"] = {"type": "string", "enum": values}

    chart = paths.get("/api/v1/reports/kpis/{chart}", {}).get("get")
    if chart:
        name_param(chart, "chart", [f"{n}.svg" for n in KPI_NAMES])
        chart["responses"]["200"] = {
            "description": "The KPI's chart: an SVG element of about 320×120.",
            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
        }
    export = paths.get("/api/v1/reports/exports/{file}", {}).get("get")
    if export:
        name_param(export, "file", [f"{k}.{f}" for k in KINDS for f in CONTENT_TYPES])
        export["responses"]["200"] = {
            "description": "The export, streamed: CSV (UTF-8, BOM) or XLSX, named by Content-Disposition.",
            "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                CONTENT_TYPES["xlsx"]: {
                    "schema": {"type": "string", "contentMediaType": CONTENT_TYPES["xlsx"]}
                },
            },
        }


def _declare_events(doc: dict[str, Any]) -> None:
    """The live channel answers a stream of Server-Sent Events, not JSON."""
    operation = doc["paths"].get("/api/v1/sync/events", {}).get("get")
    if not operation:
        return
    operation["responses"]["200"] = {
        "description": (
            "A `text/event-stream` that stays open. Events: `head` (data `HeadEvent`, `id` its "
            "position; the first at once), `end` (data `EndEvent`, then the stream closes); comment "
            "lines (`: heartbeat`) on a quiet stream every 15–25 s. The first event carries "
            "`retry` (ms) for the reconnect delay."
        ),
        "headers": {
            "Cache-Control": {"description": "`no-cache`", "schema": {"type": "string"}},
        },
        "content": {
            "text/event-stream": {
                "schema": {"type": "string", "contentMediaType": "text/event-stream"},
                "x-events": {
                    "head": {"$ref": REF.format(name="HeadEvent")},
                    "end": {"$ref": REF.format(name="EndEvent")},
                },
            }
        },
    }
