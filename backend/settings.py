"""Settings read once from the environment, validated, then frozen.

Every field is documented here and in the README's configuration table. A bad value stops the
service at start with a message naming the variable, never later with a stack trace.
"""

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from semver import Version

__all__ = ("ACTION_LOG_MIN_DAYS", "AUDIT_MIN_DAYS", "Settings", "SettingsError")

PREFIX = "HEATCREW_"

ACTION_LOG_MIN_DAYS = 14
"""Phones keep acknowledged actions this long (``mobile_contract.client.KEEP_ACKNOWLEDGED``), so
that a restored server can be given them again; the action log is kept at least as long."""

AUDIT_MIN_DAYS = 3 * 365
"""The audit log is kept at least three years."""


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    var_dir: Path = Path("./var")
    """Where the embedded defaults live: the SQLite file, local blobs and the generated secret key."""

    database_url: str = ""
    """SQLAlchemy URL. Empty means ``sqlite:///<var_dir>/heatcrew.db``. PostgreSQL:
    ``postgresql+psycopg://user@host:5432/dbname``."""

    db_connect_timeout: int = 3
    """Seconds to wait for the database to accept a new connection (PostgreSQL; libpq counts
    whole seconds, at least 2). A server that accepts TCP and never answers costs this, not minutes."""

    db_statement_timeout: float = 30.0
    """Seconds one statement may run before the database cancels it (PostgreSQL
    ``statement_timeout``, sent with the connection); on SQLite, how long a writer waits for the
    write lock (``busy_timeout``). Either answers ``503 database_unavailable``. 0: no limit (SQLite: 30 s).
    Migrations run without it."""

    db_pool_timeout: float = 5.0
    """Seconds a request waits for a free pooled connection before ``503 database_unavailable``."""

    ready_min_free_bytes: int = 1024**3
    """``/ready`` fails while the local blob directory's disk has fewer free bytes than this
    (1 GiB); 0 switches the check off. S3 has no such limit."""

    auto_migrate: bool = True
    """``heatcrew serve`` upgrades the schema before it starts serving."""

    blob_backend: str = "local"
    """``local`` (a directory) or ``s3`` (any S3-compatible store through boto3)."""

    blob_dir: Path | None = None
    """Directory of the local blob store; default ``<var_dir>/blobs``."""

    s3_endpoint_url: str | None = None
    """S3 endpoint (MinIO, OSS, moto_server); unset means AWS itself."""

    s3_bucket: str | None = None
    """Bucket holding the blobs; required with ``blob_backend=s3``."""

    s3_region: str | None = None
    """Region of the bucket."""

    s3_access_key_id: str | None = None
    """Access key; unset means boto3's usual credential chain."""

    s3_secret_access_key: str | None = None
    """Secret key paired with the access key."""

    secret_key: str = ""
    """Signing key of access tokens. Unset: generated once into ``<var_dir>/secret_key``. Every
    worker of one deployment must share it."""

    access_token_ttl: int = 900
    """Seconds an access token lives. Short, because a stolen phone must stop working soon."""

    refresh_token_ttl: int = 30 * 24 * 3600
    """Seconds a refresh token lives: long enough for a crew member a week or more offline."""

    login_window: int = 900
    """Seconds over which login attempts are counted for rate limiting."""

    login_max_failures_per_user: int = 5
    """Failed logins for one username within the window before it is refused with 429."""

    login_max_attempts_per_address: int = 30
    """Login attempts from one client address within the window before it is refused with 429."""

    login_hash_concurrency: int = 2
    """Password checks (Argon2id, 64 MiB each) one worker runs at once; further logins queue. The
    default suits two cores; it bounds a worker's memory (100 concurrent logins: +2 x 64 MiB)."""

    login_queue_wait: float = 5.0
    """Seconds a login may queue for a password check; past it, ``503 login_busy`` (retryable)
    with a ``Retry-After``. The attempt is not counted against the account."""

    refresh_window: int = 60
    """Seconds over which token refreshes are counted per client address."""

    refresh_max_per_address: int = 60
    """Token refreshes (``POST /api/v1/auth/refresh``) from one client address within the window
    before ``429 rate_limited`` with a ``Retry-After``. Crews behind one carrier NAT share it."""

    public_document_window: int = 60
    """Seconds over which public document look-ups are counted per client address."""

    public_document_max_per_address: int = 30
    """Look-ups of ``/api/v1/public/documents/{reference}`` (and its PDF) from one client address
    within the window before ``429 rate_limited`` with a ``Retry-After``."""

    trust_forwarded_for: bool = False
    """Take the client address from ``X-Forwarded-For``, its last hop (only behind one trusted load
    balancer that appends the address it saw)."""

    max_body_bytes: int = 2_000_000
    """Largest JSON request body accepted; larger answers 413 with the limit."""

    timezone: str = "Asia/Shanghai"
    """Default zone of a new company; times are stored in UTC and shown in this zone."""

    host: str = "127.0.0.1"
    """Address ``heatcrew serve`` listens on."""

    port: int = 8000
    """Port ``heatcrew serve`` listens on."""

    workers: int = 1
    """Worker processes for ``heatcrew serve`` (use PostgreSQL when more than one)."""

    log_level: str = "info"
    """Log level of the server."""

    log_format: str = "json"
    """``json``: one JSON object per line (for log collectors); ``console``: coloured lines for a
    person at a terminal. Both carry the same fields (request id, route, status, user, device)."""

    metrics_port: int = 0
    """Port of a separate listener serving only ``/metrics`` (Prometheus) beside the API, on
    ``host``; keep it off the public network. 0: no such listener."""

    metrics_token: str = ""
    """Bearer token that opens ``GET /metrics`` on the API port itself. Empty: the API port has no
    ``/metrics`` (``404``); a wrong or missing token answers ``401``."""

    docs_enabled: bool = True
    """Serve the interactive API docs page at ``/schema/swagger``."""

    max_upload_bytes: int = 50 * 1024 * 1024
    """Largest file (photo, signature image) accepted by the blob upload endpoints; larger answers
    ``413 blob_too_large`` with the limit. An unfinished upload is never kept beyond it either."""

    upload_quota_bytes: int = 2 * 1024**3
    """Bytes one user may upload in any 24 hours (stored files plus unfinished uploads); more answers
    ``429 upload_quota_exceeded`` with the limit and a ``Retry-After``."""

    upload_quota_files: int = 2000
    """Files one user may upload in any 24 hours; more answers ``429 upload_quota_exceeded``."""

    upload_expiry: int = 24 * 3600
    """Seconds an unfinished (resumable) upload is kept after its last byte arrived."""

    presign_expiry: int = 900
    """Seconds a presigned direct-to-bucket upload URL stays valid (S3 backend only)."""

    cors_allow_origins: str = ""
    """Browser origins allowed to call the API (CORS), comma-separated, such as
    ``https://console.example.com``; empty: none. Answers to them expose the upload headers
    (``Upload-Offset``, ``Upload-Length``, ``Upload-Expires``), ``Retry-After`` and ``X-Request-ID``."""

    min_app_version: str | None = None
    """Oldest phone app (``X-App-Version``, a semantic version such as ``2.3.1``) served in full.
    An older app gets ``426 app_upgrade_required`` on reads and its intents are refused, but its
    queued facts are still taken. Unset: no minimum."""

    deprecation_docs_url: str | None = None
    """Where the phone team reads about retired action versions; sent as
    ``Link: <url>; rel="deprecation"`` beside ``Deprecation``/``Sunset``. Unset: no ``Link``."""

    receipt_time_tolerance: int = 600
    """Seconds a receipt's arrival and completion times may differ from the order's records (after
    correcting the phone's clock) before the receipt is refused with ``content_disagrees``."""

    console_idle_timeout: int = 1800
    """Seconds a web console session may go unused before it ends (the board's own refreshes do
    not count as use)."""

    console_session_lifetime: int = 12 * 3600
    """Seconds a web console session lives at most, however busy."""

    console_trust_forwarded_proto: bool = False
    """Take the scheme from ``X-Forwarded-Proto`` (behind a trusted TLS-terminating proxy only):
    the console's cookie is ``Secure`` when the browser's request came over TLS."""

    console_board_refresh: int = 15
    """Seconds between the console SLA board's refreshes of its table."""

    change_feed_retention_days: int = 30
    """Days of change-feed history (``change_log``) kept by ``heatcrew maintenance``: a phone
    offline for longer gets a full snapshot (``reset``) on its next pull. At least 1."""

    action_log_retention_days: int = 90
    """Days the answers to pushed actions (``sync_action``) are kept. At least 14, as long as
    phones keep acknowledged actions; a device's latest answers and its ``last_applied_seq`` are
    always kept, so a resend is never applied twice (docs/ARCHITECTURE.md, "Data lifecycle")."""

    login_record_retention_days: int = 30
    """Days login attempts and rate-limit counters are kept. Longer than every rate window."""

    audit_retention_days: int = AUDIT_MIN_DAYS
    """Days the audit log is kept; at least three years (1095)."""

    photo_original_retention_days: int = 0
    """Days after an order closed that its photos' originals (with GPS and EXIF) are kept, for a
    company without its own setting; the metadata-free copies stay. 0: originals kept for ever."""

    maintenance_batch_rows: int = 2000
    """Rows ``heatcrew maintenance`` deletes per transaction: short transactions never hold up
    the field's pushes for long."""

    live_cache_max_age: float = 300.0
    """Seconds a worker answers empty delta pulls from memory before it asks the database again,
    even with no notice (``backend.sync.live``). Notices keep it right in the meantime; this bounds
    how late a change written by another process on SQLite (the CLI) can reach a phone. 0: never
    answer from memory."""

    events_heartbeat: float = 20.0
    """Seconds between the comment lines ``GET /api/v1/sync/events`` sends on a quiet stream, so
    proxies and carrier NATs keep it open (15–25 s suits most)."""

    events_max_streams: int = 1000
    """Event streams one worker keeps open at once; one more answers ``503 events_busy`` with a
    ``Retry-After`` (the phone polls meanwhile)."""

    _resolved: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "var_dir", Path(self.var_dir))
        if self.blob_dir is None:
            object.__setattr__(self, "blob_dir", self.var_dir / "blobs")
        if self.blob_backend not in ("local", "s3"):
            raise SettingsError(f"{PREFIX}BLOB_BACKEND must be 'local' or 's3', not {self.blob_backend!r}")
        if self.blob_backend == "s3" and not self.s3_bucket:
            raise SettingsError(f"{PREFIX}S3_BUCKET is required when {PREFIX}BLOB_BACKEND=s3")
        url = self.effective_database_url
        if not url.startswith(("sqlite", "postgresql")):
            raise SettingsError(f"{PREFIX}DATABASE_URL must be a sqlite:// or postgresql:// URL, not {url!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"{PREFIX}TIMEZONE is not a known IANA zone: {self.timezone!r}") from None
        for name in ("access_token_ttl", "refresh_token_ttl", "login_window", "max_body_bytes", "workers"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be a positive whole number")
        for name in ("console_idle_timeout", "console_session_lifetime", "console_board_refresh"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be a positive whole number")
        for name in (
            "login_max_failures_per_user",
            "login_max_attempts_per_address",
            "login_hash_concurrency",
            "refresh_window",
            "refresh_max_per_address",
            "public_document_window",
            "public_document_max_per_address",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be a positive whole number")
        if not 0 < self.login_queue_wait <= 300:
            raise SettingsError(f"{PREFIX}LOGIN_QUEUE_WAIT must be a number of seconds above 0, at most 300")
        if not 0 < self.port < 65536:
            raise SettingsError(f"{PREFIX}PORT must be between 1 and 65535")
        if not 0 <= self.metrics_port < 65536 or (self.metrics_port and self.metrics_port == self.port):
            raise SettingsError(f"{PREFIX}METRICS_PORT must be 0 (off) or a port other than {PREFIX}PORT")
        for origin in self.cors_origins:
            if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?", origin):
                raise SettingsError(
                    f"{PREFIX}CORS_ALLOW_ORIGINS must list origins such as https://console.example.com, "
                    f"not {origin!r}"
                )
        if self.log_format not in ("json", "console"):
            raise SettingsError(f"{PREFIX}LOG_FORMAT must be 'json' or 'console', not {self.log_format!r}")
        if self.access_token_ttl >= self.refresh_token_ttl:
            raise SettingsError(f"{PREFIX}ACCESS_TOKEN_TTL must be shorter than {PREFIX}REFRESH_TOKEN_TTL")
        for name in (
            "max_upload_bytes",
            "upload_quota_bytes",
            "upload_quota_files",
            "upload_expiry",
            "presign_expiry",
        ):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be a positive whole number")
        for name in ("db_connect_timeout", "db_pool_timeout"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be a positive number of seconds")
        for name in ("db_statement_timeout", "ready_min_free_bytes"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{PREFIX}{name.upper()} must be 0 or more")
        if self.live_cache_max_age < 0:
            raise SettingsError(f"{PREFIX}LIVE_CACHE_MAX_AGE must be 0 or more seconds")
        if not 0 < self.events_heartbeat <= 300:
            raise SettingsError(f"{PREFIX}EVENTS_HEARTBEAT must be a number of seconds above 0, at most 300")
        if self.events_max_streams <= 0:
            raise SettingsError(f"{PREFIX}EVENTS_MAX_STREAMS must be a positive whole number")
        if self.receipt_time_tolerance < 0:
            raise SettingsError(f"{PREFIX}RECEIPT_TIME_TOLERANCE must be 0 or more seconds")
        if self.min_app_version is not None and not Version.is_valid(self.min_app_version):
            raise SettingsError(
                f"{PREFIX}MIN_APP_VERSION must be a semantic version such as 2.3.1, "
                f"not {self.min_app_version!r}"
            )
        if self.deprecation_docs_url is not None and not self.deprecation_docs_url.startswith(
            ("https://", "http://")
        ):
            raise SettingsError(f"{PREFIX}DEPRECATION_DOCS_URL must be an http(s) URL")
        self._check_retention()
        if self.presign_expiry > 7 * 24 * 3600:
            raise SettingsError(f"{PREFIX}PRESIGN_EXPIRY cannot exceed 604800 seconds (S3's limit)")

    def _check_retention(self) -> None:
        if self.change_feed_retention_days < 1:
            raise SettingsError(f"{PREFIX}CHANGE_FEED_RETENTION_DAYS must be at least 1")
        if self.action_log_retention_days < ACTION_LOG_MIN_DAYS:
            raise SettingsError(
                f"{PREFIX}ACTION_LOG_RETENTION_DAYS must be at least {ACTION_LOG_MIN_DAYS}: "
                "phones keep acknowledged actions that long"
            )
        longest_window = max(self.login_window, self.refresh_window, self.public_document_window)
        if self.login_record_retention_days < 1 or self.login_record_retention_days * 86400 <= longest_window:
            raise SettingsError(
                f"{PREFIX}LOGIN_RECORD_RETENTION_DAYS must be at least 1 and longer than every rate window"
            )
        if self.audit_retention_days < AUDIT_MIN_DAYS:
            raise SettingsError(
                f"{PREFIX}AUDIT_RETENTION_DAYS must be at least {AUDIT_MIN_DAYS} (three years)"
            )
        if self.photo_original_retention_days < 0:
            raise SettingsError(f"{PREFIX}PHOTO_ORIGINAL_RETENTION_DAYS must be 0 (for ever) or more days")
        if self.maintenance_batch_rows < 1:
            raise SettingsError(f"{PREFIX}MAINTENANCE_BATCH_ROWS must be a positive whole number")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.var_dir / 'heatcrew.db').as_posix()}"

    @property
    def cors_origins(self) -> list[str]:
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def signing_key(self) -> str:
        """The token signing key; generated once into the var directory when not configured."""
        if self.secret_key:
            return self.secret_key
        if "secret_key" not in self._resolved:
            path = self.var_dir / "secret_key"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_urlsafe(48))
            self._resolved["secret_key"] = path.read_text().strip()
        return self._resolved["secret_key"]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from ``HEATCREW_*`` variables; ``overrides`` win (used by tests)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name.startswith("_"):
                continue
            raw = environ.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, f.type, raw)
        values.update(overrides)
        return cls(**values)


def _parse(name: str, annotation: Any, raw: str) -> Any:
    var = PREFIX + name.upper()
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = str(annotation)
    if "bool" in text or kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{var} must be true or false, not {raw!r}")
    if "float" in text or kind == "float":
        try:
            return float(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(f"{var} must be a number, not {raw!r}") from None
    if "int" in text or kind == "int":
        try:
            return int(raw.replace("_", ""))
        except ValueError:
            raise SettingsError(f"{var} must be a whole number, not {raw!r}") from None
    if "Path" in text:
        return Path(raw)
    return raw
