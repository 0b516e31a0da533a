"""The worker's live view of the change feed: what it knows is committed, and who is listening.

One :class:`LiveHub` per worker (``ctx.live``). It learns of every commit that writes the feed,
and of every revocation, from notices: on PostgreSQL a dedicated connection LISTENs to what the
triggers of migration 0015 send (NOTIFY is delivered only after commit); on SQLite, with one
worker, the committing session tells it in process (``notify_after_commit``), and a commit by
any other connection or process (the ``heatcrew`` CLI: a new epoch, an erasure) is seen through
SQLite's ``PRAGMA data_version`` on a connection of the hub's own, read before every cached
answer and every stamp: when it moved, everything learned is dropped, as on a reconnect.

It serves two things:

- **empty delta pulls from memory.** Per user it keeps a *bound*: a position at or above every
  committed change for that user (or for everyone in the company), learned from a database pull
  that found nothing newer, and raised by every notice since. A cursor of the current epoch, of
  this user, not pruned, at or past the bound, is answered with itself and no changes: no
  database round trip. The cursor never moves in such an answer, so a notice that arrives late
  only delays a change, never skips it; the next pull after the notice goes to the database.
- **SSE subscribers** (``GET /api/v1/sync/events``): each is woken with the new position when a
  notice names its user (or its whole company), and told to check again when its session, device
  or user is revoked.

While the listener is disconnected the hub is *unknown*: nothing is answered from memory and every
stream reads its head from the database at each heartbeat; notices sent meanwhile are lost, so on
reconnect everything learned is dropped and every stream reloads its head.
"""

import asyncio
import contextlib
import logging
import random
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session as OrmSession

__all__ = (
    "AUTH_CHANNEL",
    "FEED_CHANNEL",
    "LiveHub",
    "Stamp",
    "Subscriber",
    "notify_after_commit",
)

log = logging.getLogger("heatcrew.live")

FEED_CHANNEL = "heatcrew_feed"
AUTH_CHANNEL = "heatcrew_auth"
# Position "after every row of this version" (as in backend.sync.pull).
WHOLE_VERSION = 2**62
# Streams one user may hold on one worker (a phone, a spare, one reconnecting over a half-open one).
MAX_STREAMS_PER_USER = 3
_NOTICES = "heatcrew.live_notices"


@dataclass(frozen=True, slots=True)
class Stamp:
    """Taken before a database read: what the hub had heard by then."""

    generation: int
    seq: int


@dataclass(slots=True)
class _Head:
    company_id: uuid.UUID
    bound: int
    learned_at: float


@dataclass(slots=True)
class _Company:
    epoch: str
    pruned_below: int
    wide: int  # the highest position of a change for everyone noticed since it was learned
    learned_at: float


@dataclass(eq=False, slots=True)
class Subscriber:
    """One open SSE stream."""

    user_id: uuid.UUID
    company_id: uuid.UUID
    session_id: uuid.UUID
    device_id: str
    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    position: int = 0  # the highest position noticed for it
    recheck: bool = False  # reload the head from the database (notices may have been lost)
    force: bool = False  # tell the phone to pull even at the same position (a new epoch, pruning)
    check_auth: bool = False  # a revocation may concern it
    evicted: bool = False  # a newer stream of its user took its place: it ends

    def poke(self) -> None:
        with contextlib.suppress(RuntimeError):  # its loop has closed: the stream is gone
            self.loop.call_soon_threadsafe(self.wake.set)


class TooManyStreams(Exception):
    pass


class LiveHub:
    """See the module's docstring. Thread-safe: pulls learn from threads, the listener and the
    streams run on the worker's event loop, SQLite writers notify from their threads."""

    def __init__(
        self,
        *,
        database_url: str,
        max_age: float = 300.0,
        revoked_ttl: float = 900.0,
        max_streams: int = 1000,
        max_streams_per_user: int = MAX_STREAMS_PER_USER,
        in_process: bool = True,
        connect_timeout: int = 3,
    ) -> None:
        url = make_url(database_url)
        self.postgres = url.get_backend_name() == "postgresql"
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._connect_timeout = max(2, int(connect_timeout))
        self.max_age = max_age
        self.revoked_ttl = revoked_ttl
        self.max_streams = max_streams
        self.max_streams_per_user = max_streams_per_user
        # SQLite: the hub hears only its own worker's writes, so it knows only with one worker.
        self._in_process = in_process and not self.postgres
        self._sqlite_path = None if self.postgres else url.database
        self._data_version_conn: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self._lock = threading.Lock()
        self._known = False
        self._generation = 0
        self._seq = 0
        self._user_seq: dict[uuid.UUID, int] = {}
        self._company_seq: dict[uuid.UUID, int] = {}
        self._heads: dict[uuid.UUID, _Head] = {}
        self._companies: dict[uuid.UUID, _Company] = {}
        self._revoked: dict[tuple[str, str], float] = {}
        # Sessions a database pull admitted since the listener (re)connected: a revocation of one
        # of them is heard. One revoked before (a restart, an outage) never was.
        self._admitted: dict[uuid.UUID, float] = {}
        self._subscribers: dict[Subscriber, None] = {}  # in the order they came
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.listener_pid: int | None = None
        """The listening backend's process id (PostgreSQL), for tests and operators."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def known(self) -> bool:
        return self._known

    @property
    def active(self) -> bool:
        """Whether notices reach this hub at all (started, and on SQLite the only worker)."""
        return self.postgres or self._in_process

    async def start(self) -> None:
        self._stopping = False
        if self.postgres:
            self._task = asyncio.get_running_loop().create_task(self._listen(), name="heatcrew-live")
        elif self._in_process:
            self._on_connected()

    async def stop(self) -> None:
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._on_lost()
        self.release_database()
        for sub in list(self._subscribers):
            sub.check_auth = True
            sub.poke()

    async def _listen(self) -> None:
        import psycopg

        backoff = 0.1
        while not self._stopping:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=self._connect_timeout,
                    application_name="heatcrew-live",
                    keepalives=1,
                    keepalives_idle=10,
                    keepalives_interval=5,
                    keepalives_count=3,
                )
                async with conn:
                    # Notices that come with a statement's answer (the heartbeat's) reach psycopg.
                    conn.add_notify_handler(lambda notice: self.dispatch(notice.channel, notice.payload))
                    await conn.execute(f"LISTEN {FEED_CHANNEL}")
                    await conn.execute(f"LISTEN {AUTH_CHANNEL}")
                    self.listener_pid = conn.info.backend_pid
                    self._on_connected()
                    backoff = 0.1
                    while not self._stopping:
                        await self._receive(conn, 20.0)
                        await conn.execute("SELECT 1")  # a quiet link is checked, not trusted
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: unknown until we are back
                if not self._stopping:
                    log.warning("live listener lost: %s", type(exc).__name__)
            finally:
                self.listener_pid = None
                self._on_lost()
            if self._stopping:
                return
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, 5.0)

    async def _receive(self, conn: Any, seconds: float) -> None:
        """Dispatch the notices that arrive in the next ``seconds``; raise when the link fails.

        The socket is read when it is readable, in the event loop's own callback: psycopg's
        ``notifies()`` sets up and tears down a wait for each notice, three times the cost, and
        every worker hears every push of every company."""
        loop = asyncio.get_running_loop()
        pgconn = conn.pgconn
        failed: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                pgconn.consume_input()
                while (notice := pgconn.notifies()) is not None:
                    self.dispatch(notice.relname.decode(), notice.extra.decode())
            except Exception as exc:  # the link failed (or a notice could not be read)
                loop.remove_reader(fd)
                if not failed.done():
                    failed.set_exception(exc)

        fd = pgconn.socket
        loop.add_reader(fd, readable)
        try:
            readable()  # what came in with the last statement's answer and is waiting in libpq
            await asyncio.wait([failed], timeout=seconds)
        finally:
            loop.remove_reader(fd)
        if failed.done():
            failed.result()

    def _on_connected(self) -> None:
        with self._lock:
            self._generation += 1
            self._heads.clear()
            self._companies.clear()
            self._admitted.clear()
            self._known = True
            subscribers = list(self._subscribers)
        for sub in subscribers:  # what was sent while we were away is lost: read it again
            sub.recheck = True
            sub.check_auth = True
            sub.poke()

    def _on_lost(self) -> None:
        with self._lock:
            if not self._known:
                return
            self._known = False
            self._generation += 1
            self._heads.clear()
            self._companies.clear()
            self._admitted.clear()

    # ------------------------------------------------------------------ notices

    def dispatch(self, channel: str, payload: str) -> None:
        """One notice as the triggers of migration 0015 send it."""
        try:
            kind, _, rest = payload.partition("|")
            if channel == FEED_CHANNEL and kind == "f":
                company, position, users = rest.split("|", 2)
                self.feed(
                    uuid.UUID(company),
                    int(position),
                    None if users == "*" else [uuid.UUID(u) for u in users.split(",") if u],
                )
            elif channel == FEED_CHANNEL and kind == "c":
                self.counter(uuid.UUID(rest))
            elif channel == AUTH_CHANNEL and kind in ("s", "d", "u"):
                self.revoked(kind, rest)
            else:
                raise ValueError(kind)
        except ValueError:
            log.warning("live notice not understood on %s", channel)

    def feed(self, company_id: uuid.UUID, position: int, users: list[uuid.UUID] | None) -> None:
        """Changes at ``position`` committed for ``users`` (``None``: everyone in the company)."""
        with self._lock:
            self._seq += 1
            if users is None:
                self._company_seq[company_id] = self._seq
                company = self._companies.get(company_id)
                if company is not None:
                    company.wide = max(company.wide, position)
            else:
                for user in users:
                    self._user_seq[user] = self._seq
                    head = self._heads.get(user)
                    if head is not None:
                        head.bound = max(head.bound, position)
            woken = [
                s
                for s in self._subscribers
                if s.company_id == company_id and (users is None or s.user_id in users)
            ]
        for sub in woken:
            sub.position = max(sub.position, position)
            sub.poke()

    def written(self, company_id: uuid.UUID, users: list[uuid.UUID] | None) -> None:
        """This worker committed changes for ``users`` (``None``: everyone in the company) at a
        position it does not know: what it learned of them is dropped, and a read begun before
        learns nothing (the NOTIFY, when it comes, raises the bounds as usual)."""
        with self._lock:
            self._seq += 1
            if users is None:
                self._company_seq[company_id] = self._seq
                self._heads = {u: h for u, h in self._heads.items() if h.company_id != company_id}
            else:
                for user in users:
                    self._user_seq[user] = self._seq
                    self._heads.pop(user, None)

    def counter(self, company_id: uuid.UUID) -> None:
        """The company's epoch or pruning changed: every cursor is judged by the database again."""
        with self._lock:
            self._seq += 1
            self._company_seq[company_id] = self._seq
            self._companies.pop(company_id, None)
            self._heads = {u: h for u, h in self._heads.items() if h.company_id != company_id}
            woken = [s for s in self._subscribers if s.company_id == company_id]
        for sub in woken:
            sub.recheck = True
            sub.force = True
            sub.poke()

    def revoked(self, kind: str, ident: str) -> None:
        """A session (``s``), device (``d``) or user (``u``) may no longer be let in."""
        now = time.monotonic()
        key = (kind, str(uuid.UUID(ident)) if kind != "d" else ident)
        with self._lock:
            self._revoked[key] = now
            if len(self._revoked) > 10_000 or random.random() < 0.01:
                self._revoked = {k: t for k, t in self._revoked.items() if now - t < self.revoked_ttl}
            woken = [s for s in self._subscribers if key in _keys(s.session_id, s.device_id, s.user_id)]
        for sub in woken:
            sub.check_auth = True
            sub.poke()

    def is_revoked(self, *, session_id: uuid.UUID, device_id: str, user_id: uuid.UUID) -> bool:
        revoked = self._revoked
        return any(key in revoked for key in _keys(session_id, device_id, user_id))

    # ------------------------------------------------------------------ the cache

    def _seen_other_writers(self) -> None:
        """SQLite (call with the lock held): forget what was learned if any other connection
        committed since the last look. A commit before a stamp is in the read that follows it; one
        after moves ``data_version`` and is seen here before the next cached answer."""
        if not self._in_process:
            return
        if not self._sqlite_path or self._sqlite_path == ":memory:":
            self._known = False  # a private in-memory database: nothing to watch, answer nothing
            return
        try:
            if self._data_version_conn is None:
                self._data_version_conn = sqlite3.connect(self._sqlite_path, check_same_thread=False)
            (version,) = self._data_version_conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            self._generation += 1
            self._heads.clear()
            self._companies.clear()
            return
        if version != self._data_version:
            self._data_version = version
            self._generation += 1
            self._heads.clear()
            self._companies.clear()

    def release_database(self) -> None:
        """SQLite: let go of the hub's own connection, as the pool's are let go before the file is
        replaced (a restore); what was learned is dropped, and the next look reopens it."""
        with self._lock:
            if self._data_version_conn is not None:
                self._data_version_conn.close()
            self._data_version_conn, self._data_version = None, None
            self._generation += 1
            self._heads.clear()
            self._companies.clear()

    def stamp(self) -> Stamp:
        with self._lock:
            self._seen_other_writers()
            return Stamp(self._generation if self._known else -1, self._seq)

    def learn(
        self,
        stamp: Stamp,
        *,
        company_id: uuid.UUID,
        user_id: uuid.UUID,
        session_id: uuid.UUID,
        epoch: str,
        pruned_below: int,
        bound: int,
    ) -> None:
        """A database read begun at ``stamp``, by ``session_id`` (admitted), found no change for the
        user above ``bound``."""
        now = time.monotonic()
        with self._lock:
            if not self._known or stamp.generation != self._generation:
                return
            if len(self._admitted) >= 100_000:
                self._admitted = {k: t for k, t in self._admitted.items() if now - t <= self.max_age}
            self._admitted[session_id] = now
            # Heard of since the read began: it may or may not have seen it, so learn nothing.
            if self._company_seq.get(company_id, 0) > stamp.seq or self._user_seq.get(user_id, 0) > stamp.seq:
                return
            company = self._companies.get(company_id)
            if company is None or company.epoch != epoch or now - company.learned_at > self.max_age:
                # Relearning a stale entry of the same epoch keeps the changes for everyone noticed
                # since: other users' heads, still fresh, never saw them (they raise ``wide`` only).
                wide = company.wide if company is not None and company.epoch == epoch else 0
                self._companies[company_id] = _Company(epoch, pruned_below, wide, now)
            known = self._heads.get(user_id)
            if (
                known is not None
                and known.company_id == company_id
                and now - known.learned_at <= self.max_age
            ):
                bound = max(bound, known.bound)  # what notices raised it to stays: bounds only grow
            self._heads[user_id] = _Head(company_id, bound, now)

    def answers_empty(self, *, session_id: uuid.UUID, user_id: uuid.UUID, cursor: Any) -> bool:
        """Whether a delta pull from ``cursor`` (decoded) is known to find nothing committed, for a
        session a database pull admitted since the listener connected."""
        if not self._known or cursor.user != user_id:
            return False
        if self._in_process:
            with self._lock:
                self._seen_other_writers()
        head = self._heads.get(user_id)
        if head is None:
            return False
        company = self._companies.get(head.company_id)
        if company is None:
            return False
        now = time.monotonic()
        admitted = self._admitted.get(session_id)
        if admitted is None or now - admitted > self.max_age:
            return False
        if now - head.learned_at > self.max_age or now - company.learned_at > self.max_age:
            return False
        if cursor.epoch != company.epoch:
            return False
        if (cursor.version, cursor.row) < (company.pruned_below - 1, WHOLE_VERSION):
            return False
        bound = max(head.bound, company.wide)
        return (cursor.version, cursor.row) >= (bound, WHOLE_VERSION)

    # ------------------------------------------------------------------ streams

    @property
    def streams(self) -> int:
        return len(self._subscribers)

    def subscribe(
        self, *, user_id: uuid.UUID, company_id: uuid.UUID, session_id: uuid.UUID, device_id: str
    ) -> Subscriber:
        sub = Subscriber(
            user_id=user_id,
            company_id=company_id,
            session_id=session_id,
            device_id=device_id,
            loop=asyncio.get_running_loop(),
        )
        with self._lock:
            # One user (one stolen token, one phone reconnecting in a loop) never holds more than
            # a few of the worker's streams: a new one ends their oldest (a half-open one, mostly).
            own = [s for s in self._subscribers if s.user_id == user_id and not s.evicted]
            evicted = own[: max(0, len(own) - self.max_streams_per_user + 1)]
            for old in evicted:
                old.evicted = True
                self._subscribers.pop(old, None)
            if len(self._subscribers) >= self.max_streams:
                raise TooManyStreams
            self._subscribers[sub] = None
        for old in evicted:
            old.poke()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            self._subscribers.pop(sub, None)


def _keys(session_id: uuid.UUID, device_id: str, user_id: uuid.UUID) -> tuple[tuple[str, str], ...]:
    return (("s", str(session_id)), ("d", device_id), ("u", str(user_id)))


# ---------------------------------------------------------------------- SQLite: in process


def notify_after_commit(session: OrmSession, notice: tuple[Any, ...]) -> None:
    """Tell the worker's hub ``notice`` once this transaction has committed (SQLite; on
    PostgreSQL the triggers do it for every writer). Dropped on rollback.

    On PostgreSQL a change of the feed (``f``) still tells this worker's hub, at once, that it
    wrote changes for those users at a position it does not know (``w``): their next pull here
    reads the database even before the NOTIFY arrives, so a phone sees its own push at once."""
    hub = session.info.get("live")
    if hub is None:
        return
    if hub.postgres:
        if notice[0] != "f":
            return
        _, company_id, _, users = notice
        notice = ("w", company_id, users)
    session.info.setdefault(_NOTICES, []).append(notice)


def _deliver(session: OrmSession) -> None:
    notices = session.info.pop(_NOTICES, None)
    hub = session.info.get("live")
    if not notices or hub is None:
        return
    for kind, *args in notices:
        if kind == "f":
            hub.feed(*args)
        elif kind == "c":
            hub.counter(*args)
        elif kind == "w":
            hub.written(*args)
        else:
            hub.revoked(kind, *args)


def _drop(session: OrmSession) -> None:
    session.info.pop(_NOTICES, None)


def install(session_class: type[OrmSession]) -> None:
    """Deliver (or drop) the queued notices of ``session_class``'s transactions."""
    event.listen(session_class, "after_commit", _deliver)
    event.listen(session_class, "after_rollback", _drop)


# ---------------------------------------------------------------------- reads for the streams

_HEAD = sa.text(
    "SELECT coalesce(max(version), 0) FROM change_log "
    "WHERE company_id = :company_id AND (user_id = :user_id OR user_id IS NULL)"
).bindparams(sa.bindparam("company_id", type_=sa.Uuid()), sa.bindparam("user_id", type_=sa.Uuid()))


def head(db: Any, *, company_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """The highest committed position of a change for the user (0: none), in one statement."""
    row = db.fetch_one(_HEAD, {"company_id": company_id, "user_id": user_id})
    return int(row[0]) if row is not None else 0
