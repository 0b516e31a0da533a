"""Configuration read from the environment: defaults, parsing, clear errors."""

from pathlib import Path

import pytest

from backend.settings import Settings, SettingsError


def test_embedded_defaults_need_no_configuration() -> None:
    settings = Settings.from_env({})
    assert settings.effective_database_url == "sqlite:///var/heatcrew.db"
    assert settings.blob_backend == "local"
    assert settings.blob_dir == Path("var/blobs")
    assert settings.access_token_ttl == 900
    assert settings.timezone == "Asia/Shanghai"


def test_values_are_parsed_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "HEATCREW_VAR_DIR": str(tmp_path),
            "HEATCREW_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/heatcrew",
            "HEATCREW_BLOB_BACKEND": "s3",
            "HEATCREW_S3_BUCKET": "evidence",
            "HEATCREW_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "HEATCREW_ACCESS_TOKEN_TTL": "600",
            "HEATCREW_TRUST_FORWARDED_FOR": "yes",
            "HEATCREW_MAX_BODY_BYTES": "1_000_000",
        }
    )
    assert settings.effective_database_url.startswith("postgresql")
    assert settings.blob_dir == tmp_path / "blobs"
    assert settings.s3_bucket == "evidence"
    assert settings.access_token_ttl == 600
    assert settings.trust_forwarded_for is True
    assert settings.max_body_bytes == 1_000_000


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"HEATCREW_PORT": "eighty"}, "HEATCREW_PORT"),
        ({"HEATCREW_PORT": "70000"}, "HEATCREW_PORT"),
        ({"HEATCREW_AUTO_MIGRATE": "maybe"}, "HEATCREW_AUTO_MIGRATE"),
        ({"HEATCREW_BLOB_BACKEND": "ftp"}, "HEATCREW_BLOB_BACKEND"),
        ({"HEATCREW_BLOB_BACKEND": "s3"}, "HEATCREW_S3_BUCKET"),
        ({"HEATCREW_DATABASE_URL": "mysql://x"}, "HEATCREW_DATABASE_URL"),
        ({"HEATCREW_TIMEZONE": "Mars/Olympus"}, "HEATCREW_TIMEZONE"),
        ({"HEATCREW_ACCESS_TOKEN_TTL": "0"}, "HEATCREW_ACCESS_TOKEN_TTL"),
        ({"HEATCREW_ACCESS_TOKEN_TTL": "99999999"}, "HEATCREW_ACCESS_TOKEN_TTL"),
        ({"HEATCREW_DB_CONNECT_TIMEOUT": "0"}, "HEATCREW_DB_CONNECT_TIMEOUT"),
        ({"HEATCREW_DB_STATEMENT_TIMEOUT": "soon"}, "HEATCREW_DB_STATEMENT_TIMEOUT"),
        ({"HEATCREW_DB_STATEMENT_TIMEOUT": "-1"}, "HEATCREW_DB_STATEMENT_TIMEOUT"),
        ({"HEATCREW_DB_POOL_TIMEOUT": "0"}, "HEATCREW_DB_POOL_TIMEOUT"),
        ({"HEATCREW_READY_MIN_FREE_BYTES": "-5"}, "HEATCREW_READY_MIN_FREE_BYTES"),
        ({"HEATCREW_LOGIN_HASH_CONCURRENCY": "0"}, "HEATCREW_LOGIN_HASH_CONCURRENCY"),
        ({"HEATCREW_LOGIN_QUEUE_WAIT": "soon"}, "HEATCREW_LOGIN_QUEUE_WAIT"),
        ({"HEATCREW_LOGIN_QUEUE_WAIT": "0"}, "HEATCREW_LOGIN_QUEUE_WAIT"),
        ({"HEATCREW_LOGIN_QUEUE_WAIT": "nan"}, "HEATCREW_LOGIN_QUEUE_WAIT"),
        ({"HEATCREW_REFRESH_MAX_PER_ADDRESS": "0"}, "HEATCREW_REFRESH_MAX_PER_ADDRESS"),
        ({"HEATCREW_PUBLIC_DOCUMENT_WINDOW": "-1"}, "HEATCREW_PUBLIC_DOCUMENT_WINDOW"),
        ({"HEATCREW_LOG_FORMAT": "xml"}, "HEATCREW_LOG_FORMAT"),
        ({"HEATCREW_METRICS_PORT": "8000"}, "HEATCREW_METRICS_PORT"),
        ({"HEATCREW_METRICS_PORT": "70000"}, "HEATCREW_METRICS_PORT"),
        (
            {"HEATCREW_CORS_ALLOW_ORIGINS": "https://ok.example, console.example"},
            "HEATCREW_CORS_ALLOW_ORIGINS",
        ),
        ({"HEATCREW_CORS_ALLOW_ORIGINS": "https://console.example/path"}, "HEATCREW_CORS_ALLOW_ORIGINS"),
        ({"HEATCREW_MIN_APP_VERSION": "2.3"}, "HEATCREW_MIN_APP_VERSION"),
        ({"HEATCREW_RECEIPT_TIME_TOLERANCE": "-1"}, "HEATCREW_RECEIPT_TIME_TOLERANCE"),
        ({"HEATCREW_DEPRECATION_DOCS_URL": "docs/PHONE.md"}, "HEATCREW_DEPRECATION_DOCS_URL"),
        ({"HEATCREW_CHANGE_FEED_RETENTION_DAYS": "0"}, "HEATCREW_CHANGE_FEED_RETENTION_DAYS"),
        ({"HEATCREW_ACTION_LOG_RETENTION_DAYS": "13"}, "HEATCREW_ACTION_LOG_RETENTION_DAYS"),
        ({"HEATCREW_LOGIN_RECORD_RETENTION_DAYS": "0"}, "HEATCREW_LOGIN_RECORD_RETENTION_DAYS"),
        (
            {"HEATCREW_LOGIN_RECORD_RETENTION_DAYS": "1", "HEATCREW_LOGIN_WINDOW": "86400"},
            "HEATCREW_LOGIN_RECORD_RETENTION_DAYS",
        ),
        ({"HEATCREW_AUDIT_RETENTION_DAYS": "1094"}, "HEATCREW_AUDIT_RETENTION_DAYS"),
        ({"HEATCREW_PHOTO_ORIGINAL_RETENTION_DAYS": "-1"}, "HEATCREW_PHOTO_ORIGINAL_RETENTION_DAYS"),
        ({"HEATCREW_MAINTENANCE_BATCH_ROWS": "0"}, "HEATCREW_MAINTENANCE_BATCH_ROWS"),
    ],
)
def test_a_bad_value_names_its_variable(environ: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        Settings.from_env(environ)


def test_database_timeouts_and_the_free_space_threshold() -> None:
    defaults = Settings.from_env({})
    assert defaults.db_connect_timeout == 3
    assert defaults.db_statement_timeout == 30
    assert defaults.db_pool_timeout == 5
    assert defaults.ready_min_free_bytes == 1024**3
    settings = Settings.from_env(
        {
            "HEATCREW_DB_CONNECT_TIMEOUT": "5",
            "HEATCREW_DB_STATEMENT_TIMEOUT": "2.5",
            "HEATCREW_DB_POOL_TIMEOUT": "1",
            "HEATCREW_READY_MIN_FREE_BYTES": "0",
        }
    )
    assert settings.db_connect_timeout == 5
    assert settings.db_statement_timeout == 2.5
    assert settings.db_pool_timeout == 1.0
    assert settings.ready_min_free_bytes == 0


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


def test_signing_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(var_dir=tmp_path).signing_key()
    second = Settings(var_dir=tmp_path).signing_key()
    assert first == second and len(first) >= 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert Settings(var_dir=tmp_path, secret_key="configured-key").signing_key() == "configured-key"


def test_login_and_address_limits_are_read_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert (defaults.login_hash_concurrency, defaults.login_queue_wait) == (2, 5.0)
    assert (defaults.refresh_max_per_address, defaults.refresh_window) == (60, 60)
    assert (defaults.public_document_max_per_address, defaults.public_document_window) == (30, 60)
    settings = Settings.from_env(
        {
            "HEATCREW_LOGIN_HASH_CONCURRENCY": "4",
            "HEATCREW_LOGIN_QUEUE_WAIT": "2.5",
            "HEATCREW_REFRESH_MAX_PER_ADDRESS": "600",
            "HEATCREW_REFRESH_WINDOW": "300",
            "HEATCREW_PUBLIC_DOCUMENT_MAX_PER_ADDRESS": "10",
            "HEATCREW_PUBLIC_DOCUMENT_WINDOW": "120",
        }
    )
    assert (settings.login_hash_concurrency, settings.login_queue_wait) == (4, 2.5)
    assert (settings.refresh_max_per_address, settings.refresh_window) == (600, 300)
    assert (settings.public_document_max_per_address, settings.public_document_window) == (10, 120)


def test_versioning_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "HEATCREW_MIN_APP_VERSION": "2.3.1",
            "HEATCREW_RECEIPT_TIME_TOLERANCE": "300",
            "HEATCREW_DEPRECATION_DOCS_URL": "https://docs.example.test/phone",
        }
    )
    assert (settings.min_app_version, settings.receipt_time_tolerance, settings.deprecation_docs_url) == (
        "2.3.1",
        300,
        "https://docs.example.test/phone",
    )
    assert (Settings().min_app_version, Settings().receipt_time_tolerance) == (None, 600)


def test_retention_settings_and_their_floors() -> None:
    from backend.settings import ACTION_LOG_MIN_DAYS, AUDIT_MIN_DAYS
    from mobile_contract.client import KEEP_ACKNOWLEDGED

    defaults = Settings.from_env({})
    assert (defaults.change_feed_retention_days, defaults.action_log_retention_days) == (30, 90)
    assert (defaults.login_record_retention_days, defaults.audit_retention_days) == (30, 3 * 365)
    assert defaults.photo_original_retention_days == 0  # originals kept unless a company says otherwise
    # The action log outlives what phones keep, so they can always be answered from it.
    assert KEEP_ACKNOWLEDGED.days == ACTION_LOG_MIN_DAYS
    assert AUDIT_MIN_DAYS == 1095
    settings = Settings.from_env(
        {
            "HEATCREW_ACTION_LOG_RETENTION_DAYS": "14",
            "HEATCREW_AUDIT_RETENTION_DAYS": "3650",
            "HEATCREW_PHOTO_ORIGINAL_RETENTION_DAYS": "180",
        }
    )
    assert settings.action_log_retention_days == 14 and settings.audit_retention_days == 3650
    assert settings.photo_original_retention_days == 180
