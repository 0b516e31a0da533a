"""The ``heatcrew`` command line on both databases."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from backend.cli import main


@pytest.fixture
def run(database_url: str, tmp_path: Path):
    runner = CliRunner()
    env = {"HEATCREW_DATABASE_URL": database_url, "HEATCREW_VAR_DIR": str(tmp_path / "var")}

    def invoke(*args: str, password: str | None = None):
        extra = {"HEATCREW_NEW_PASSWORD": password} if password else {}
        return runner.invoke(main, list(args), env={**env, **extra}, catch_exceptions=False)

    return invoke


def test_db_upgrade_reports_the_revision(run) -> None:
    result = run("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "schema at" in result.output
    current = run("db", "current")
    revision = result.output.split("schema at")[1].strip()
    assert f"database: {revision}" in current.output


def test_db_current_waits_for_the_migration(run, tmp_path: Path) -> None:
    assert run("db", "upgrade").exit_code == 0
    done = run("db", "current", "--wait", "5")
    assert done.exit_code == 0, done.output
    runner = CliRunner()
    empty = {"HEATCREW_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}", "HEATCREW_VAR_DIR": str(tmp_path)}
    behind = runner.invoke(main, ["db", "current", "--wait", "1.5"], env=empty)
    assert behind.exit_code == 1
    assert "the schema is at None, not" in behind.output


def test_users_add_list_disable(run) -> None:
    added = run(
        "users", "add", "--username", "wang", "--full-name", "王师傅", "--role", "technician",
        "--company", "north", "--company-name", "North Heat", password="a-good-password",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "added wang (technician) to north" in added.output
    listed = run("users", "list")
    assert "wang" in listed.output and "active" in listed.output
    assert run("users", "disable", "wang").exit_code == 0
    assert "disabled" in run("users", "list").output


def test_users_add_refuses_a_short_password_and_an_unknown_company(run) -> None:
    short = run("users", "add", "--username", "li", "--full-name", "Li", "--role", "technician",
                "--company", "north", "--company-name", "North", password="short")  # fmt: skip
    assert short.exit_code == 1
    assert "password_too_short" in short.output
    unknown = run("users", "add", "--username", "li", "--full-name", "Li", "--role", "technician",
                  "--company", "nowhere", password="a-good-password")  # fmt: skip
    assert unknown.exit_code == 2
    assert "give --company-name" in unknown.output


def test_demo_seeds_once_and_refuses_a_real_database(run) -> None:
    first = run("demo", "--no-serve")
    assert first.exit_code == 0, first.output
    assert "tech1" in first.output and "demo-password" in first.output
    assert run("demo", "--no-serve").exit_code == 0  # idempotent
    users = run("users", "list").output
    for name in ("admin", "dispatcher1", "supervisor1", "tech1", "tech2", "inspector1"):
        assert name in users
    run("users", "add", "--username", "real", "--full-name", "Real", "--role", "admin",
        "--company", "demo", password="a-good-password")  # fmt: skip
    refused = run("demo", "--no-serve")
    assert refused.exit_code == 1
    assert "demo_refused" in refused.output


def test_devices_list_and_revoke(run, database_url: str, tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from backend.app import create_app
    from backend.settings import Settings

    run("demo", "--no-serve")
    app = create_app(Settings(var_dir=tmp_path / "var", database_url=database_url))
    with TestClient(app) as client:
        response = client.post(
            "/api/v1/auth/login",
            json={
                "username": "tech1",
                "password": "demo-password",
                "device": {"id": "cli-phone-001", "platform": "ios", "app_version": "2.0"},
            },
        )
        assert response.status_code == 200
        token = response.json()["access_token"]
        assert "cli-phone-001" in run("devices", "list").output
        assert run("devices", "revoke", "cli-phone-001", "--reason", "lost").exit_code == 0
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401 and me.json()["code"] == "device_revoked"
    app.state.ctx.db.dispose()
    assert "revoked" in run("devices", "list").output


def test_a_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["db", "upgrade"], env={"HEATCREW_PORT": "x"})
    assert result.exit_code == 2
    assert "HEATCREW_PORT must be a whole number" in result.output


def test_blobs_sweep_removes_only_expired_unfinished_uploads(run, database_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from backend.settings import Settings
    from backend.storage import build_blob_store

    settings = Settings.from_env(
        {"HEATCREW_DATABASE_URL": database_url, "HEATCREW_VAR_DIR": str(tmp_path / "var")}
    )
    staging = build_blob_store(settings).uploads
    part = tmp_path / "part"
    now = datetime.now(UTC)
    for owner, sha, age in (
        ("user-a", "a" * 64, timedelta(days=3)),
        ("user-b", "b" * 64, timedelta(minutes=5)),
    ):
        part.write_bytes(b"half a photo")
        staging.save(owner, sha, part, touched_at=now - age)
    result = run("blobs", "sweep")
    assert result.exit_code == 0, result.output
    assert "1 unfinished uploads removed" in result.output
    assert staging.stat("user-a", "a" * 64) is None
    assert staging.stat("user-b", "b" * 64) is not None  # a phone may still resume this one
