"""Upload limits are settings like the others: parsed from HEATCREW_*, validated at start."""

import pytest

from backend.settings import Settings, SettingsError


def test_upload_limits_have_defaults_and_come_from_the_environment() -> None:
    defaults = Settings.from_env({})
    assert defaults.max_upload_bytes == 50 * 1024 * 1024
    assert defaults.upload_quota_bytes == 2 * 1024**3
    assert defaults.upload_quota_files == 2000
    assert defaults.upload_expiry == 86400
    assert defaults.presign_expiry == 900
    settings = Settings.from_env(
        {
            "HEATCREW_MAX_UPLOAD_BYTES": "20_000_000",
            "HEATCREW_UPLOAD_QUOTA_BYTES": "500000000",
            "HEATCREW_UPLOAD_QUOTA_FILES": "300",
            "HEATCREW_UPLOAD_EXPIRY": "3600",
            "HEATCREW_PRESIGN_EXPIRY": "300",
        }
    )
    assert (settings.max_upload_bytes, settings.upload_quota_bytes, settings.upload_quota_files) == (
        20_000_000,
        500_000_000,
        300,
    )
    assert (settings.upload_expiry, settings.presign_expiry) == (3600, 300)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("HEATCREW_MAX_UPLOAD_BYTES", "0", "HEATCREW_MAX_UPLOAD_BYTES"),
        ("HEATCREW_UPLOAD_QUOTA_BYTES", "-1", "HEATCREW_UPLOAD_QUOTA_BYTES"),
        ("HEATCREW_UPLOAD_QUOTA_FILES", "lots", "HEATCREW_UPLOAD_QUOTA_FILES"),
        ("HEATCREW_UPLOAD_EXPIRY", "0", "HEATCREW_UPLOAD_EXPIRY"),
        ("HEATCREW_PRESIGN_EXPIRY", "604801", "HEATCREW_PRESIGN_EXPIRY"),
    ],
)
def test_bad_upload_limits_stop_the_start_naming_the_variable(variable: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        Settings.from_env({variable: value})
