"""Golden examples as they are recorded: one HTTP exchange, written the way a phone developer reads it.

The story (``scenes.py``) talks to the service through a :class:`Recorder`. Every request goes
over real HTTP (an in-process ``TestClient`` when the examples are generated, a live server when
they are replayed); the ones a scene names as an example are handed, with their answer, to a
*sink*: the generator writes them to files, the replay test compares them with the files.
"""

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

__all__ = ("Answer", "Example", "Http", "Recorder", "Sink")

# The answer headers a phone acts on; the rest (length, date, server) say nothing about the contract.
ANSWER_HEADERS = (
    "content-type",
    "location",
    "retry-after",
    "upload-offset",
    "upload-expires",
    "cache-control",
    "deprecation",
    "sunset",
    "link",
)


class Http(Protocol):
    def request(
        self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None
    ) -> httpx.Response: ...


@dataclass(frozen=True, slots=True)
class Example:
    """Where an exchange is filed (``auth/login``) and what it shows."""

    name: str
    title: str
    description: str
    breaks_contract: str | None = None
    """What is wrong with the request, for an example of what the server does with a bad one."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: Any

    def __getitem__(self, key: str) -> Any:
        return self.body[key]


Sink = Callable[[Example, dict[str, Any]], None]


class Recorder:
    """Sends requests exactly as the example files show them and files the ones a scene names."""

    def __init__(self, http: Http, sink: Sink) -> None:
        self.http = http
        self.sink = sink

    def send(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        content: bytes | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        example: Example | None = None,
    ) -> Answer:
        sent_headers: dict[str, str] = {}
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        payload = content
        if body is not None:
            sent_headers["Content-Type"] = "application/json"
            payload = json.dumps(body, ensure_ascii=False).encode()
        elif content is not None:
            sent_headers["Content-Type"] = "application/octet-stream"
        sent_headers.update(headers or {})
        url = path + ("?" + str(httpx.QueryParams(query)) if query else "")
        response = self.http.request(method, url, headers=sent_headers, content=payload)
        answer = Answer(response.status_code, response.headers, _decoded(response))
        if example is not None:
            request: dict[str, Any] = {"method": method, "path": path}
            if query:
                request["query"] = dict(query)
            request["headers"] = sent_headers
            if body is not None:
                request["body"] = body
            elif content is not None:
                request["body_base64"] = base64.b64encode(content).decode()
            exchange: dict[str, Any] = {"title": example.title, "description": example.description}
            if example.breaks_contract:
                exchange["breaks_contract"] = example.breaks_contract
            exchange["request"] = request
            exchange["response"] = _answer_record(response, answer)
            self.sink(example, exchange)
        return answer


def _decoded(response: httpx.Response) -> Any:
    if response.headers.get("content-type", "").startswith("application/json") and response.content:
        return response.json()
    return None


def _answer_record(response: httpx.Response, answer: Answer) -> dict[str, Any]:
    record: dict[str, Any] = {
        "status": response.status_code,
        "headers": {name: response.headers[name] for name in ANSWER_HEADERS if name in response.headers},
    }
    if answer.body is not None:
        record["body"] = answer.body
    elif response.content:
        # Images and PDFs: what they are, not their bytes.
        record["body_binary"] = {
            "size": len(response.content),
            "sha256": hashlib.sha256(response.content).hexdigest(),
        }
    return record
