"""loop and policy rollback end to end on a log whose best arm is known: learn, gate, publish, roll back."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from bandits.shipped import current_version, list_versions
from sectionrank.cli import main
from tests.bandits.gate_factories import T0, write_gate_log

BATCH = 1500


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def write_config(root: Path, policy: str = "policy", **loop) -> Path:
    table = {
        "settle_seconds": 0.0,
        "min_decisions": 100,
        "gate_min_decisions": 100,
        "n_bootstrap": 20,
        **loop,
    }
    lines = [
        'store = "store.db"',
        'log = "log.db"',
        f'policy = "{policy}"',
        "reward_wait_seconds = 0.0",
        "[loop]",
        *(f"{k} = {v}" for k, v in table.items()),
    ]
    path = root / "service.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def append(root: Path, batch: int) -> None:
    write_gate_log(root / "log.db", BATCH, seed=20 + batch, start=T0 + batch * BATCH, first_id=batch * BATCH)


def test_cli_loop_once_learns_then_publishes_and_rollback_restores(tmp_path):
    config = write_config(tmp_path)
    append(tmp_path, 0)
    first = run("loop", "--config", config, "--once")
    assert first.exit_code == 0, first.output
    assert "cycle 1: 1500 decisions (seq 1..1500)" in first.output
    assert "gate: no candidate yet" in first.output
    for batch in (1, 2):
        append(tmp_path, batch)
        result = run("loop", "--config", config, "--once")
        assert result.exit_code == 0, result.output
        assert f"gate: published version {batch:04d}" in result.output
    policy = tmp_path / "policy"
    assert current_version(policy) == "0002"
    rolled = run("policy", "rollback", policy)
    assert rolled.exit_code == 0, rolled.output
    assert "version 0002 -> 0001" in rolled.output
    assert current_version(policy) == "0001"
    assert list_versions(policy) == ["0001", "0002"]
    again = run("policy", "rollback", policy)
    assert again.exit_code == 1
    assert again.output.strip() == f"Error: {policy}: version 0001 is the first one; nothing to roll back to"


def test_cli_loop_once_with_too_few_decisions_does_nothing(tmp_path):
    config = write_config(tmp_path)
    append(tmp_path, 0)
    result = run("loop", "--config", config, "--once", "--min-decisions", BATCH + 1)
    assert result.exit_code == 0, result.output
    assert "1500 new decisions, fewer than --min-decisions 1501; idle" in result.output
    assert not (tmp_path / "policy" / "loop.json").exists()


# Loop invocations a user gets wrong: the config's policy or [loop] table, the log; the one-line error.
@pytest.mark.parametrize(
    ("policy", "loop", "make_log", "message"),
    [
        (
            "uniform",
            {},
            True,
            "policy: the loop publishes into a policy directory; the config names 'uniform'",
        ),
        ("policy", {"every_seconds": 0}, True, "loop.every_seconds: expected a number > 0"),
        ("policy", {"reward": '"likes"'}, True, "loop.reward: expected one of"),
        ("policy", {}, False, "log.db"),
    ],
)
def test_cli_loop_refuses_bad_input_in_one_line(tmp_path, policy, loop, make_log, message):
    config = write_config(tmp_path, policy, **loop)
    if make_log:
        append(tmp_path, 0)
    result = run("loop", "--config", config, "--once")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: ")
    assert message in lines[0]
