"""The comparison's gated bandit: what ships when the gate decides, and when it refuses."""

from __future__ import annotations

import pytest

from bandits.policies import FixedArmPolicy
from bandits.shipped import ShippedPolicy
from simulator.compare_knobs import learn_bandit, ship_bandit
from tests.bandits.gate_factories import GATE_SECTIONS, T0, write_gate_log
from tests.bandits.policy_factories import CONFIG


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("ship") / "log.db"
    write_gate_log(path, 5_000, seed=5)
    return path


def _ship(log_path, directory, cut):
    candidate = learn_bandit(log_path, CONFIG, directory / "candidates", until=cut, seed=0)
    candidate.policy.close()
    return ship_bandit(log_path, CONFIG, directory, candidate, cut=cut, seed=0)


def test_ship_bandit_publishes_what_the_gate_decides(log_path, tmp_path):
    shipped = _ship(log_path, tmp_path / "policy", T0 + 3_500)
    try:
        assert isinstance(shipped.policy, ShippedPolicy)
        assert shipped.decision is not None
        assert set(shipped.shipped()) == {s.name for s in CONFIG}
        for section in GATE_SECTIONS:
            assert shipped.shipped()[section] == "candidate"  # the context decides: a clear gain
            # The best logged fixed arm, chosen before the window: arm 0 (two thirds of the users).
            assert shipped.fixed_logged[section] == 0
        assert shipped.artifact_bytes > 0
    finally:
        shipped.policy.close()


def test_ship_bandit_serves_the_default_arms_when_the_gate_refuses(log_path, tmp_path):
    shipped = _ship(log_path, tmp_path / "policy", T0 + 4_990)
    assert shipped.decision is None
    assert isinstance(shipped.policy, FixedArmPolicy)
    assert shipped.policy.arm_index == {s.name: s.default_arm.index for s in CONFIG}
    assert set(shipped.shipped().values()) == {"refused"}
    assert shipped.fixed_logged["discover"] == 0
    assert shipped.artifact_bytes == 0
    assert not (tmp_path / "policy" / "current").exists()
