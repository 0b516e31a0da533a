"""CSV import through the command line: per-row errors, nothing half-imported, on both databases."""

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from backend.cli import main

HOUSEHOLD_HEADER = (
    "account_number,station_code,station_name,address,unit,heated_area_m2,"
    "resident_name,resident_phone,is_key_customer,lat,lon"
)
GOOD_ROWS = [
    "300101,S09,北站换热站,铁西区北一路 5 号,1-1-101,88.5,韩梅梅,13700000001,否,41.80,123.35",
    "300102,S09,北站换热站,铁西区北一路 5 号,1-2-201,90,李雷,13700000002,是,,",
    "300103,S10,西站换热站,铁西区西二路 9 号,3-3-303,60.25,王小明,,0,,",
]
BAD_ROWS = [
    "300104,S10,西站换热站,铁西区西二路 9 号,3-3-304,sixty,王大明,13700000004,否,,",  # area not a number
    "300101,S10,西站换热站,铁西区西二路 9 号,3-3-305,70,重复户,13700000005,否,,",  # repeats row 2
    ",S10,西站换热站,铁西区西二路 9 号,3-3-306,70,无户号,call me,maybe,95,",  # several problems
]


@pytest.fixture
def run(database_url: str, tmp_path: Path):
    env = {"HEATCREW_DATABASE_URL": database_url, "HEATCREW_VAR_DIR": str(tmp_path / "var")}

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    invoke("demo", "--no-serve")
    return invoke


def count(database_url: str, table: str) -> int:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    engine.dispose()
    return n


def write(tmp_path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path = tmp_path / "import.csv"
    path.write_bytes("\n".join(lines).encode(encoding))
    return path


def test_bad_rows_are_all_reported_and_nothing_is_imported(run, database_url: str, tmp_path: Path) -> None:
    before = count(database_url, "household")
    result = run(
        "import",
        "households",
        str(write(tmp_path, [HOUSEHOLD_HEADER, *GOOD_ROWS, *BAD_ROWS])),
        "--company",
        "demo",
    )
    assert result.exit_code == 1
    out = result.output
    assert "row 5, heated_area_m2: not a number: 'sixty'" in out
    assert "row 6, account_number: repeats row 2" in out
    assert "row 7, account_number: required" in out
    assert "row 7, resident_phone: not a phone number" in out
    assert "row 7, is_key_customer: not yes/no" in out
    assert "row 7, lat: must be between -90 and 90" in out
    assert count(database_url, "household") == before
    assert count(database_url, "station") == 2  # the demo's, none half-created


def test_a_clean_file_imports_and_a_second_run_updates(run, database_url: str, tmp_path: Path) -> None:
    before = count(database_url, "household")
    path = write(tmp_path, [HOUSEHOLD_HEADER, *GOOD_ROWS])
    result = run("import", "households", str(path), "--company", "demo")
    assert result.exit_code == 0, result.output
    assert "3 created, 0 updated" in result.output
    assert count(database_url, "household") == before + 3
    assert count(database_url, "building") == 4 + 2
    changed = [GOOD_ROWS[0].replace("韩梅梅", "韩梅"), *GOOD_ROWS[1:]]
    again = run(
        "import", "households", str(write(tmp_path, [HOUSEHOLD_HEADER, *changed])), "--company", "demo"
    )
    assert "0 created, 3 updated" in again.output
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        name = conn.execute(
            sa.text("SELECT resident_name FROM household WHERE account_number = '300101'")
        ).scalar_one()
        key = conn.execute(
            sa.text("SELECT is_key_customer FROM household WHERE account_number = '300102'")
        ).scalar_one()
    engine.dispose()
    assert name == "韩梅" and key


def test_excel_exports_in_gb18030_with_bom_less_headers_work(run, database_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, [HOUSEHOLD_HEADER, *GOOD_ROWS], encoding="gb18030")
    result = run("import", "households", str(path), "--company", "demo")
    assert result.exit_code == 0, result.output


def test_a_wrong_header_is_refused_whole(run, tmp_path: Path) -> None:
    path = write(tmp_path, ["account,station,address", "1,2,3"])
    result = run("import", "households", str(path), "--company", "demo")
    assert result.exit_code == 1
    assert "header does not match" in result.output


STAFF_HEADER = "username,full_name,role,staff_number,phone,team_code,team_name,initial_password"


def test_staff_import_creates_accounts_in_teams(run, database_url: str, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            STAFF_HEADER,
            "tech3,维修工 孙强,technician,T0303,13600000003,T3,北站维修班,first-password-3",
            "tech4,维修工 周明,technician,T0304,,T3,北站维修班,first-password-4",
        ],
    )
    result = run("import", "staff", str(path), "--company", "demo")
    assert result.exit_code == 0, result.output
    assert "2 created" in result.output
    assert count(database_url, "team") == 3


def test_staff_import_refuses_taken_usernames_and_weak_passwords(
    run, database_url: str, tmp_path: Path
) -> None:
    before = count(database_url, "app_user")
    path = write(
        tmp_path,
        [STAFF_HEADER, "tech1,重名,technician,,,,,long-enough-pw", "tech5,弱口令,wizard,,,,,short"],
    )
    result = run("import", "staff", str(path), "--company", "demo")
    assert result.exit_code == 1
    assert "row 2, username: already exists" in result.output
    assert "row 3, role: not one of" in result.output
    assert "row 3, initial_password: shorter than 10 characters" in result.output
    assert count(database_url, "app_user") == before
