"""The reference offline client: how a phone should queue, upload, push and pull.

Everything the crew member does becomes a row in a durable outbox (SQLite) *before* anything is
sent: an id and a ``seq`` are assigned once and never change. ``sync()`` then uploads the files
the queued actions need, pushes the queue in batches from the server's ``last_applied_seq + 1``,
handles every answer, and pulls the change feed into a local store. A lost answer is simply sent
again; the server answers ``duplicate``. Acknowledged actions are kept for a while, so that a
server restored from an older backup can be given them again.

Pure Python over httpx, msgspec and sqlite3; it imports nothing from the server.
"""

import hashlib
import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgspec

from mobile_contract.actions import CURRENT_VERSIONS
from mobile_contract.sync import PullResponse, PushResponse, Status
from mobile_contract.uploads import UPLOAD_OFFSET

__all__ = (
    "HttpLike",
    "LockedOut",
    "Offline",
    "OutboxClient",
    "PullReport",
    "PushReport",
)

DONE_STATUSES = {Status.applied, Status.duplicate, Status.rejected, Status.conflict}
KEEP_ACKNOWLEDGED = timedelta(days=14)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    v INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    blobs TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    status TEXT,
    code TEXT,
    message TEXT,
    current TEXT,
    acked_at TEXT
);
CREATE TABLE IF NOT EXISTS files (
    sha256 TEXT PRIMARY KEY, path TEXT NOT NULL, uploaded INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS store (entity TEXT, id TEXT, version INTEGER, data TEXT, PRIMARY KEY (entity, id));
"""


class HttpLike(Protocol):
    """What the client needs of an HTTP client (``httpx.Client`` and Litestar's TestClient fit)."""

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response: ...


class Offline(Exception):
    """No answer from the server (no network, timeout, lost answer). Everything stays queued."""


class LockedOut(Exception):
    """The server refuses this device or user (revoked, disabled, logged out). The queue is kept."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(slots=True)
class PushReport:
    sent: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    conflicts: int = 0
    waiting: int = 0
    out_of_order: int = 0
    requests: int = 0
    statuses: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class PullReport:
    changes: int = 0
    resets: int = 0
    pages: int = 0


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class OutboxClient:
    """One phone: its device id, its tokens, its queue and its offline copy of the data."""

    def __init__(
        self,
        http: HttpLike,
        db_path: str | Path,
        *,
        device_id: str | None = None,
        platform: str = "android",
        app_version: str = "1.0.0",
        clock: Callable[[], datetime] | None = None,
        batch_size: int = 100,
        files_dir: str | Path | None = None,
    ) -> None:
        self.http = http
        self.clock = clock or (lambda: datetime.now(UTC))
        self.batch_size = batch_size
        self.platform = platform
        self.app_version = app_version
        self._lock = threading.RLock()
        self.db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")  # a queued action survives a phone crash
        self.db.executescript(_SCHEMA)
        self.files_dir = Path(files_dir) if files_dir else Path(str(db_path) + ".files")
        self.files_dir.mkdir(parents=True, exist_ok=True)
        if self._get("device_id") is None:
            self._set("device_id", device_id or f"dev-{uuid.uuid4()}")

    # ---------------------------------------------------------------- state

    def _get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set(self, key: str, value: str | None) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    @property
    def device_id(self) -> str:
        value = self._get("device_id")
        assert value is not None
        return value

    @property
    def last_applied_seq(self) -> int:
        return int(self._get("last_applied_seq") or 0)

    # ---------------------------------------------------------------- auth

    def login(self, username: str, password: str) -> dict[str, Any]:
        body = {
            "username": username,
            "password": password,
            "device": {"id": self.device_id, "platform": self.platform, "app_version": self.app_version},
        }
        response = self._send("POST", "/api/v1/auth/login", json=body, authenticated=False)
        if response.status_code != 200:
            raise LockedOut(_code(response), _message(response))
        tokens = response.json()
        self._set("access_token", tokens["access_token"])
        self._set("refresh_token", tokens["refresh_token"])
        return tokens

    def _refresh(self) -> None:
        token = self._get("refresh_token")
        if token is None:
            raise LockedOut("not_authenticated", "log in first")
        response = self._send(
            "POST",
            "/api/v1/auth/refresh",
            json={"refresh_token": token, "device_id": self.device_id},
            authenticated=False,
        )
        if response.status_code == 429:
            # Too many refreshes from this address (a crew behind one NAT): the token is unspent
            # and the login stands; try again after Retry-After, like any lost connection.
            raise Offline(f"refresh rate-limited; retry after {response.headers.get('retry-after', '?')} s")
        if response.status_code != 200:
            raise LockedOut(_code(response), _message(response))
        tokens = response.json()
        self._set("access_token", tokens["access_token"])
        self._set("refresh_token", tokens["refresh_token"])

    def _send(self, method: str, url: str, *, authenticated: bool = True, **kwargs: Any) -> httpx.Response:
        extra_headers = dict(kwargs.pop("headers", None) or {})
        for attempt in range(2):
            headers = dict(extra_headers)
            # Every request says which app asks: an outdated one is told (426 app_upgrade_required).
            headers["X-App-Version"] = self.app_version
            if authenticated:
                headers["Authorization"] = f"Bearer {self._get('access_token')}"
                headers["X-Device-Id"] = self.device_id
            try:
                response = self.http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                raise Offline(str(exc)) from exc
            if response.status_code == 401 and authenticated and attempt == 0:
                code = _code(response)
                # A HEAD answer has no body to say why: refresh, and a session that really ended
                # fails at the refresh instead.
                if code == "token_expired" or (method == "HEAD" and not response.content):
                    self._refresh()  # a week offline: the queue is resent untouched with a new token
                    continue
                raise LockedOut(code, _message(response))
            if response.status_code == 401:
                raise LockedOut(_code(response), _message(response))
            if response.status_code >= 500:
                raise Offline(f"server error {response.status_code}")
            return response
        raise LockedOut("not_authenticated", "refresh did not help")  # pragma: no cover

    # ---------------------------------------------------------------- the queue

    def attach_file(self, content: bytes) -> str:
        """Keep a photo or signature image with the phone until it is uploaded; returns its hash."""
        sha256 = hashlib.sha256(content).hexdigest()
        path = self.files_dir / sha256
        if not path.exists():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(content)
            tmp.replace(path)
        with self._lock:
            self.db.execute("INSERT OR IGNORE INTO files (sha256, path) VALUES (?, ?)", (sha256, str(path)))
        return sha256

    def enqueue(
        self,
        action_type: str,
        payload: Any,
        *,
        v: int | None = None,
        occurred_at: datetime | None = None,
        blobs: list[str] | None = None,
    ) -> tuple[str, int]:
        """Queue one action durably; its id and seq are fixed here, before any network."""
        data = msgspec.json.encode(payload).decode()
        blob_list = blobs if blobs is not None else _blob_refs(payload)
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                seq = int(self._get("next_seq") or 1)
                action_id = str(uuid.uuid4())
                self.db.execute(
                    "INSERT INTO outbox (seq, id, type, v, occurred_at, payload, blobs)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        seq,
                        action_id,
                        action_type,
                        v or CURRENT_VERSIONS.get(action_type, 1),
                        _iso(occurred_at or self.clock()),
                        data,
                        json.dumps(blob_list),
                    ),
                )
                self._set("next_seq", str(seq + 1))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        return action_id, seq

    def pending(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT seq, id, type, v FROM outbox WHERE done = 0 ORDER BY seq").fetchall()
        return [{"seq": s, "id": i, "type": t, "v": v} for s, i, t, v in rows]

    def outcome(self, action_id: str) -> dict[str, Any] | None:
        """What the server answered for one action: the phone shows this, never a guess."""
        row = self.db.execute(
            "SELECT seq, done, status, code, message, current FROM outbox WHERE id = ?", (action_id,)
        ).fetchone()
        if row is None:
            return None
        seq, done, status, code, message, current = row
        return {
            "seq": seq,
            "synced": bool(done),
            "status": status,
            "code": code,
            "message": message,
            "current": json.loads(current) if current else None,
        }

    # ---------------------------------------------------------------- sync

    def sync(self) -> tuple[PushReport, PullReport]:
        return self.push(), self.pull()

    def push(self) -> PushReport:
        report = PushReport()
        with self._lock:
            stuck_rounds = 0
            while True:
                batch = self._next_batch()
                if not batch:
                    break
                self._upload_files_for(batch)
                body = {
                    "device_id": self.device_id,
                    "sent_at": _iso(self.clock()),
                    "actions": [
                        {
                            "id": row["id"],
                            "seq": row["seq"],
                            "type": row["type"],
                            "v": row["v"],
                            "occurred_at": row["occurred_at"],
                            "payload": json.loads(row["payload"]),
                        }
                        for row in batch
                    ],
                }
                report.requests += 1
                report.sent += len(batch)
                response = self._send("POST", "/api/v1/sync/push", json=body)
                if response.status_code != 200:
                    raise LockedOut(_code(response), _message(response))
                answer = msgspec.json.decode(response.content, type=PushResponse)
                progressed = self._record(answer, report)
                if not progressed:
                    stuck_rounds += 1
                    if stuck_rounds >= 2:  # e.g. a photo that cannot be uploaded: stop, keep everything
                        break
                else:
                    stuck_rounds = 0
            self._forget_old()
        return report

    def _next_batch(self) -> list[dict[str, Any]]:
        # Everything not answered yet, including an action at or below the server's counter whose
        # answer never came (it was dropped from a batch the server applied around it): resent,
        # it is answered ``duplicate`` with its first result.
        rows = self.db.execute(
            "SELECT seq, id, type, v, occurred_at, payload, blobs FROM outbox"
            " WHERE done = 0 OR seq > ? ORDER BY seq LIMIT ?",
            (self.last_applied_seq, self.batch_size),
        ).fetchall()
        keys = ("seq", "id", "type", "v", "occurred_at", "payload", "blobs")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def _upload_files_for(self, batch: list[dict[str, Any]], only: list[str] | None = None) -> None:
        # In the order the queue needs them: with a quota, the earliest action's files go first.
        wanted = dict.fromkeys(only or [])
        if not only:
            for row in batch:
                wanted.update(dict.fromkeys(json.loads(row["blobs"])))
        for sha256 in wanted:
            row = self.db.execute("SELECT path, uploaded FROM files WHERE sha256 = ?", (sha256,)).fetchone()
            if row is None or row[1] == -1 or (row[1] and not only):
                continue
            path = Path(row[0])
            if not path.exists():
                continue
            outcome = self._upload(sha256, path)
            if outcome == "stored":
                self.db.execute("UPDATE files SET uploaded = 1 WHERE sha256 = ?", (sha256,))
            elif outcome == "refused":
                # Refused for good (not an image, damaged, too large): its action is refused too.
                self.db.execute("UPDATE files SET uploaded = -1 WHERE sha256 = ?", (sha256,))
            elif outcome == "later":
                break  # over today's quota: the files and their actions wait for a later sync

    def _upload(self, sha256: str, path: Path) -> str:
        """Upload one file, resuming after whatever the server kept of an interrupted attempt.

        ``HEAD`` says whether the server holds the file already, and otherwise how many bytes of
        this user's unfinished upload it kept (``Upload-Offset``); only the rest is sent, streamed
        from disk. A dropped connection raises :class:`Offline` and the next sync resumes. Returns
        ``stored``, ``refused`` (permanently) or ``later`` (quota; try again another time).
        """
        head = self._send("HEAD", f"/api/v1/blobs/{sha256}")
        if head.status_code == 200:
            return "stored"
        offset = _header_int(head, UPLOAD_OFFSET)
        size = path.stat().st_size
        for _attempt in range(3):
            if offset > size:  # not ours to finish (should not happen): start again
                offset = 0
            response = self._send(
                "PUT",
                f"/api/v1/blobs/{sha256}" + (f"?offset={offset}" if offset else ""),
                content=_file_from(path, offset),
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size - offset)},
            )
            if response.status_code in (200, 201):
                return "stored"
            if response.status_code == 409 and _code(response) == "upload_offset_mismatch":
                offset = _header_int(response, UPLOAD_OFFSET)
                continue  # another attempt moved on (or the server forgot): send from where it is
            if response.status_code == 429:
                return "later"
            if 400 <= response.status_code < 500:
                return "refused"
            return "later"
        return "later"

    def _record(self, answer: PushResponse, report: PushReport) -> bool:
        before = self.last_applied_seq
        now = _iso(self.clock())
        missing: list[str] = []
        answered = 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for result in answer.results:
                report.statuses[str(result.id)] = result.status.value
                if result.status in DONE_STATUSES:
                    final = (
                        result.original_status
                        if result.status is Status.duplicate and result.original_status
                        else result.status
                    )
                    counter = {
                        Status.applied: "applied",
                        Status.duplicate: "duplicates",
                        Status.rejected: "rejected",
                        Status.conflict: "conflicts",
                    }[result.status]
                    setattr(report, counter, getattr(report, counter) + 1)
                    answered += 1
                    self.db.execute(
                        "UPDATE outbox SET done = 1, status = ?, code = ?, message = ?, current = ?,"
                        " acked_at = ? WHERE seq = ?",
                        (
                            final.value,
                            result.code,
                            result.message,
                            json.dumps(result.current) if result.current else None,
                            now,
                            result.seq,
                        ),
                    )
                elif result.status is Status.waiting:
                    report.waiting += 1
                    missing.extend(result.missing or [])
                else:
                    report.out_of_order += 1
            if answer.last_applied_seq < before:
                # The server forgot actions it had applied (restored from a backup): they are sent again.
                self.db.execute(
                    "UPDATE outbox SET done = 0, acked_at = NULL WHERE seq > ?", (answer.last_applied_seq,)
                )
            self._set("last_applied_seq", str(answer.last_applied_seq))
            self._set("server_epoch", answer.server_epoch)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        if missing:
            self._upload_files_for([], only=missing)
        return answer.last_applied_seq != before or answered > 0

    def _forget_old(self) -> None:
        cutoff = _iso(self.clock() - KEEP_ACKNOWLEDGED)
        self.db.execute(
            "DELETE FROM outbox WHERE done = 1 AND acked_at < ? AND seq <= ?", (cutoff, self.last_applied_seq)
        )

    def pull(self) -> PullReport:
        report = PullReport()
        reset = False
        with self._lock:
            while True:
                params: dict[str, Any] = {"limit": 500}
                cursor = self._get("cursor")
                if cursor:
                    params["cursor"] = cursor
                response = self._send("GET", "/api/v1/sync/pull", params=params)
                if response.status_code != 200:
                    raise LockedOut(_code(response), _message(response))
                page = msgspec.json.decode(response.content, type=PullResponse)
                report.pages += 1
                self.db.execute("BEGIN IMMEDIATE")
                try:
                    if page.reset:
                        report.resets += 1
                        reset = True
                        self.db.execute("DELETE FROM store")
                    for change in page.changes:
                        report.changes += 1
                        if change.op == "remove":
                            self.db.execute(
                                "DELETE FROM store WHERE entity = ? AND id = ?", (change.entity, change.id)
                            )
                        else:
                            self.db.execute(
                                "INSERT OR REPLACE INTO store (entity, id, version, data)"
                                " VALUES (?, ?, ?, ?)",
                                (
                                    change.entity,
                                    change.id,
                                    change.version,
                                    json.dumps(change.data, ensure_ascii=False),
                                ),
                            )
                    self._set("cursor", page.cursor)
                    self.db.execute("COMMIT")
                except BaseException:
                    self.db.execute("ROLLBACK")
                    raise
                if not page.has_more:
                    break
            if reset:
                self._reconcile()
        return report

    def _reconcile(self) -> None:
        """After a reset the server may have been restored: resend what it no longer has."""
        response = self._send("GET", "/api/v1/sync/status")
        if response.status_code != 200:
            return
        server_last = int(response.json()["last_applied_seq"])
        if server_last < self.last_applied_seq:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("UPDATE outbox SET done = 0, acked_at = NULL WHERE seq > ?", (server_last,))
            self._set("last_applied_seq", str(server_last))
            self.db.execute("COMMIT")

    def local(self, entity: str) -> dict[str, dict[str, Any]]:
        """The offline copy: what the phone shows without a network."""
        rows = self.db.execute("SELECT id, data FROM store WHERE entity = ?", (entity,)).fetchall()
        return {row[0]: json.loads(row[1]) for row in rows}

    def close(self) -> None:
        self.db.close()


def _blob_refs(payload: Any) -> list[str]:
    data = msgspec.to_builtins(payload)
    blob = data.get("blob") if isinstance(data, dict) else None
    return [blob] if blob else []


def _file_from(path: Path, offset: int, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
    """The file from byte ``offset`` on, read in chunks as the connection takes them."""
    with path.open("rb") as f:
        f.seek(offset)
        while chunk := f.read(chunk_size):
            yield chunk


def _header_int(response: httpx.Response, name: str) -> int:
    try:
        return max(0, int(response.headers.get(name, "0")))
    except ValueError:
        return 0


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code", response.status_code))
    except ValueError:
        return str(response.status_code)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))
    except ValueError:
        return response.text[:200]
