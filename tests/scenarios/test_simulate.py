"""``heatcrew simulate`` against the demo server started as the README says."""

from click.testing import CliRunner

from backend.cli import main
from backend.simulate import simulate
from tests.fixtures.live_server import demo_server  # noqa: F401


def test_a_simulated_day_loses_nothing_and_doubles_nothing(demo_server: str) -> None:  # noqa: F811
    result = simulate(
        demo_server, phones=3, orders_per_user=2, rounds=8, offline_rate=0.25, loss_rate=0.6, seed=11
    )
    assert result.ok, result.problems
    assert result.notes_taken > 0
    assert result.applied > 0
    assert result.answers_lost > 0 and result.duplicates > 0  # the network really misbehaved
    assert result.sent > result.actions_queued  # and batches really were resent


def test_the_command_prints_a_summary(demo_server: str) -> None:  # noqa: F811
    outcome = CliRunner().invoke(
        main, ["simulate", "--url", demo_server, "--phones", "2", "--orders-per-user", "1", "--rounds", "3"]
    )
    assert outcome.exit_code == 0, outcome.output
    assert "duplicates answered" in outcome.output
    assert "nothing lost, nothing applied twice" in outcome.output
