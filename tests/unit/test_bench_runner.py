"""``python -m bench``: finds every benchmark, runs a cheap one, prints the table (no timing asserted)."""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

from bench.__main__ import discover
from bench.report import Figure, print_table

ROOT = Path(__file__).resolve().parents[2]


def test_every_benchmark_module_plugs_into_the_runner() -> None:
    names = discover()
    assert {"http", "login", "photo", "sync", "upload"} <= set(names)
    for name in names:
        function = importlib.import_module(f"bench.{name}_bench").figures
        assert "quick" in inspect.signature(function).parameters, name


def test_a_quick_run_of_one_benchmark_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "photo", "--sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = done.stdout[done.stdout.index("benchmark  ") :].splitlines()
    assert table[0].split() == ["benchmark", "figure", "value", "floor", "(same", "run)", "ratio", "target"]
    rows = [line for line in table[2:] if line.startswith("photo ")]
    assert len(rows) == 3, table
    assert any("Pillow decode" in row and "x" in row.split("decode)")[1] for row in rows)
    assert "FAILED" not in done.stdout


def test_an_unknown_benchmark_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nosuch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "no such benchmark: nosuch" in done.stderr


def test_the_table_shows_value_floor_ratio_and_target(capsys) -> None:
    text = print_table(
        [
            Figure("demo", "pull", 3.0, "ms", 1.5, "SELECT 1", "<= 4x"),
            Figure("demo", "rss", 120.0, "MiB"),
        ],
        markdown=True,
    )
    lines = text.splitlines()
    assert lines[0] == "| benchmark | figure | value | floor (same run) | ratio | target |"
    assert lines[2] == "| demo | pull | 3.00 ms | 1.50 ms (SELECT 1) | 2.00x | <= 4x |"
    assert lines[3] == "| demo | rss | 120 MiB | — | — | — |"
