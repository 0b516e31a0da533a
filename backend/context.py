"""What every request handler may reach: settings, database, blob store, clock, token codec,
the worker's gate on concurrent password checks, and its live view of the change feed."""

from dataclasses import dataclass

from argon2 import PasswordHasher

from backend.audit.service import audit_key
from backend.auth.passwords import HashGate, Passwords
from backend.auth.tokens import TokenCodec
from backend.clock import Clock, SystemClock
from backend.db import Database
from backend.evidence.seal import seal_key
from backend.settings import Settings
from backend.storage import BlobStore, build_blob_store
from backend.sync.live import LiveHub
from backend.unit_of_work import UnitOfWork

__all__ = ("AppContext", "build_context")


@dataclass(slots=True, frozen=True)
class AppContext:
    settings: Settings
    db: Database
    blobs: BlobStore
    clock: Clock
    passwords: Passwords
    tokens: TokenCodec
    login_gate: HashGate
    live: LiveHub


def build_context(
    settings: Settings,
    *,
    clock: Clock | None = None,
    blobs: BlobStore | None = None,
    password_hasher: PasswordHasher | None = None,
) -> AppContext:
    clock = clock or SystemClock()
    hub = LiveHub(
        database_url=settings.effective_database_url,
        max_age=settings.live_cache_max_age,
        revoked_ttl=settings.access_token_ttl,
        max_streams=settings.events_max_streams,
        in_process=settings.workers == 1,
        connect_timeout=settings.db_connect_timeout,
    )
    return AppContext(
        settings=settings,
        db=Database(
            settings.effective_database_url,
            clock,
            info={
                "seal_key": seal_key(settings.signing_key()),
                "audit_key": audit_key(settings.signing_key()),
                "live": hub,
            },
            connect_timeout=settings.db_connect_timeout,
            statement_timeout=settings.db_statement_timeout,
            pool_timeout=settings.db_pool_timeout,
            session_class=UnitOfWork,
        ),
        blobs=blobs if blobs is not None else build_blob_store(settings),
        clock=clock,
        passwords=Passwords(password_hasher),
        tokens=TokenCodec(settings.signing_key(), settings.access_token_ttl),
        login_gate=HashGate(settings.login_hash_concurrency, settings.login_queue_wait),
        live=hub,
    )
