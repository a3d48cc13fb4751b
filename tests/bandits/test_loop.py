"""The learning loop: arrival watermark and wait window, gate then learn, atomic publishing, durable state,
recovery after a crash at every step (an injected exception, and a process killed with SIGKILL)."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bandits import shipped
from bandits.errors import InvalidArgumentError, LearnError
from bandits.learn import read_decisions
from bandits.log import DecisionLog
from bandits.loop import (
    STATE_FILE,
    ArrivalClock,
    LearningLoop,
    LoopSettings,
    LoopState,
    candidate_lineage,
)
from bandits.promote import GateSettings
from bandits.shipped import ShippedPolicy, current_version, list_versions, read_version
from tests.bandits.gate_factories import T0, write_gate_log
from tests.bandits.policy_factories import CONFIG

BATCH = 1_500


class FakeClock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def _settings(**kwargs) -> LoopSettings:
    base = {
        "every_seconds": 1.0,
        "min_decisions": 100,
        "wait_seconds": 0.0,
        "settle_seconds": 0.0,
        "gate": GateSettings(n_bootstrap=50, min_decisions=100),
    }
    return LoopSettings(**{**base, **kwargs})


def _append(log_path: Path, batch: int) -> None:
    """The `batch`-th block of BATCH decisions, one second apart, each with feedback a second later."""
    write_gate_log(log_path, BATCH, seed=10 + batch, start=T0 + batch * BATCH, first_id=batch * BATCH)


def _once(log_path: Path, policy_dir: Path, settings: LoopSettings | None = None, *, hook=None, **run):
    clock = FakeClock()
    with DecisionLog.open(log_path) as log:
        loop = LearningLoop(log, CONFIG, policy_dir, settings or _settings(), clock=clock, hook=hook)
        return loop.run(once=True, sleep=clock.sleep, **run)


def _assert_learned_once(policy_dir: Path) -> None:
    """The candidate's parent chain learned disjoint, contiguous seq windows from 0 to the watermark."""
    state = LoopState.read(policy_dir)
    windows = candidate_lineage(policy_dir, state.candidate)
    assert windows[0][0] == 0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    assert windows[-1][1] == state.learned_through


def test_arrival_clock_counts_a_decision_learnable_only_after_the_delay():
    clock = ArrivalClock(10.0)
    clock.observe(0.0, 5)
    clock.observe(4.0, 9)
    clock.observe(12.0, 20)
    assert clock.learnable(9.9) == 0
    assert clock.learnable(10.0) == 5
    assert clock.learnable(14.0) == 9
    assert clock.learnable(21.9) == 9
    assert clock.learnable(22.0) == 20


def test_loop_first_cycle_learns_the_window_and_publishes_nothing(tmp_path):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    (report,) = _once(log_path, policy_dir)
    assert report.gate == "no candidate"
    assert report.window == (0, BATCH)
    assert report.decisions == BATCH
    assert current_version(policy_dir) is None
    state = LoopState.read(policy_dir)
    assert state == LoopState(learned_through=BATCH, candidate=report.candidate, cycles=1)
    assert (policy_dir / report.candidate).is_file()
    assert "cycle 1: 1500 decisions (seq 1..1500)" in report.line()


def test_loop_gates_the_pending_candidate_on_exactly_the_new_decisions(tmp_path):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    _once(log_path, policy_dir)
    first = LoopState.read(policy_dir).candidate
    _append(log_path, 1)
    (report,) = _once(log_path, policy_dir)
    assert report.gate == "published"
    assert report.version == "0001" == current_version(policy_dir)
    meta = read_version(policy_dir)
    window = meta["decision"]["window"]
    assert (window["after_seq"], window["through_seq"], window["decisions"]) == (BATCH, 2 * BATCH, BATCH)
    assert meta["decision"]["loop"] == {"after_seq": BATCH, "through_seq": 2 * BATCH, "candidate": first}
    assert window["fixed_arm_window"]["decisions"] == BATCH
    # Every logged section was decided with a paired difference; the line reports it.
    assert set(report.differences) == {"discover", "search"}
    assert all(low <= value <= high for value, low, high in report.differences.values())
    assert "gate: published version 0001" in report.line()
    policy = ShippedPolicy.load(policy_dir, CONFIG)
    policy.close()
    _assert_learned_once(policy_dir)


def test_loop_waits_for_the_reward_window_after_it_saw_the_decisions(tmp_path):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    clock = FakeClock()
    settings = _settings(wait_seconds=30.0, settle_seconds=5.0, every_seconds=10.0)
    with DecisionLog.open(log_path) as log:
        loop = LearningLoop(log, CONFIG, policy_dir, settings, clock=clock)
        assert loop.observe() == 0
        clock.sleep(34.0)
        _append(log_path, 1)
        assert loop.observe() == 0  # the first block was seen 34 s ago: not yet learnable
        clock.sleep(1.0)
        assert loop.observe() == BATCH  # 35 s after it was seen; the second block only 1 s
        clock.sleep(35.0)
        assert loop.observe() == 2 * BATCH
        # `once` waits until what the log holds now is learnable: restarting forgets what was seen.
        restarted = LearningLoop(log, CONFIG, policy_dir, settings, clock=clock)
        start = clock.t
        (report,) = restarted.run(once=True, sleep=clock.sleep)
    assert clock.t - start >= 35.0
    assert report.window == (0, 2 * BATCH)


def test_loop_waits_for_min_decisions(tmp_path):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    waits = []
    reports = _once(
        log_path, policy_dir, _settings(min_decisions=BATCH + 1), on_wait=lambda *a: waits.append(a)
    )
    assert reports == []
    assert waits == [(BATCH, BATCH + 1)]
    assert not (policy_dir / STATE_FILE).exists()


def test_loop_runs_cycles_on_its_period_until_stopped(tmp_path):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    clock = FakeClock()
    blocks = iter([1, 2])
    reports = []

    def on_cycle(report):
        reports.append(report)
        block = next(blocks, None)
        if block is not None:
            _append(log_path, block)

    with DecisionLog.open(log_path) as log:
        loop = LearningLoop(log, CONFIG, policy_dir, _settings(every_seconds=5.0), clock=clock)
        loop.run(should_stop=lambda: len(reports) == 3, on_cycle=on_cycle, sleep=clock.sleep)
    assert [r.window for r in reports] == [(0, BATCH), (BATCH, 2 * BATCH), (2 * BATCH, 3 * BATCH)]
    assert [r.gate for r in reports] == ["no candidate", "published", "published"]
    assert list_versions(policy_dir) == ["0001", "0002"]
    assert read_version(policy_dir, "0002")["decision"]["incumbent"] == "0001"
    _assert_learned_once(policy_dir)


def test_loop_refused_gate_publishes_nothing_and_keeps_learning(tmp_path):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    settings = _settings(gate=GateSettings(n_bootstrap=50, min_decisions=BATCH))
    _append(log_path, 0)
    _once(log_path, policy_dir, settings)
    _append(log_path, 1)
    (report,) = _once(log_path, policy_dir, settings)
    assert report.gate == "refused"
    assert "too few decisions" in report.reason
    assert current_version(policy_dir) is None
    assert LoopState.read(policy_dir).learned_through == 2 * BATCH
    _assert_learned_once(policy_dir)


class Crash(Exception):
    pass


def _crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise Crash(step)

    return hook


@pytest.mark.parametrize("step", ["gated", "learned"])
def test_loop_interrupted_after_a_step_repeats_the_cycle_without_double_publishing_or_learning(
    tmp_path, step
):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    _once(log_path, policy_dir)
    before = LoopState.read(policy_dir)
    _append(log_path, 1)
    with pytest.raises(Crash):
        _once(log_path, policy_dir, hook=_crash_at(step))
    assert LoopState.read(policy_dir) == before  # the watermark did not move
    assert list_versions(policy_dir) == ["0001"]  # the gate's version is whole
    _append(log_path, 2)  # more decisions arrived meanwhile: the repeated cycle keeps the recorded window
    (report,) = _once(log_path, policy_dir)
    assert report.gate == "recovered"
    assert report.version == "0001"
    assert report.window == (BATCH, 2 * BATCH)
    assert list_versions(policy_dir) == ["0001"]
    _assert_learned_once(policy_dir)
    (report,) = _once(log_path, policy_dir)
    assert report.window == (2 * BATCH, 3 * BATCH)
    assert report.version == "0002"
    _assert_learned_once(policy_dir)


def test_loop_interrupted_while_publishing_leaves_no_half_version(tmp_path, monkeypatch):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    _once(log_path, policy_dir)
    _append(log_path, 1)
    real = shipped.write_synced

    def failing(path: Path, data: bytes) -> None:
        if path.name == shipped.VERSION_FILE:
            raise Crash("disk")
        real(path, data)

    monkeypatch.setattr(shipped, "write_synced", failing)
    with pytest.raises(Crash):
        _once(log_path, policy_dir)
    assert current_version(policy_dir) is None
    assert list_versions(policy_dir) == []
    monkeypatch.setattr(shipped, "write_synced", real)
    (report,) = _once(log_path, policy_dir)
    assert report.gate == "published"
    assert report.version == "0001"
    _assert_learned_once(policy_dir)


_KILLED_CYCLE = """
import os, signal, sys
from bandits.log import DecisionLog
from bandits.loop import LearningLoop, LoopSettings
from bandits.promote import GateSettings
from heuristics import SectionsConfig

step = sys.argv[3]
def hook(name):
    if name == step:
        os.kill(os.getpid(), signal.SIGKILL)

settings = LoopSettings(min_decisions=100, wait_seconds=0.0, settle_seconds=0.0,
                        gate=GateSettings(n_bootstrap=50, min_decisions=100))
with DecisionLog.open(sys.argv[1]) as log:
    LearningLoop(log, SectionsConfig.load(), sys.argv[2], settings, hook=hook).run(once=True)
"""


@pytest.mark.parametrize("step", ["gated", "learned"])
def test_loop_killed_with_sigkill_mid_cycle_restarts_cleanly(tmp_path, step):
    log_path, policy_dir = tmp_path / "log.db", tmp_path / "policy"
    _append(log_path, 0)
    _once(log_path, policy_dir)
    _append(log_path, 1)
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_CYCLE, str(log_path), str(policy_dir), step],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    assert LoopState.read(policy_dir).learned_through == BATCH
    assert list_versions(policy_dir) == ["0001"]
    (report,) = _once(log_path, policy_dir)
    assert report.gate == "recovered"
    assert report.window == (BATCH, 2 * BATCH)
    assert list_versions(policy_dir) == ["0001"]
    _assert_learned_once(policy_dir)


def test_loop_state_is_replaced_atomically_and_read_back(tmp_path):
    state = LoopState(learned_through=42, candidate="candidates/policy-0003.vw", cycles=3)
    state.write(tmp_path)
    assert LoopState.read(tmp_path) == state
    assert not (tmp_path / (STATE_FILE + ".tmp")).exists()
    assert json.loads((tmp_path / STATE_FILE).read_text())["learned_through"] == 42
    (tmp_path / STATE_FILE).write_text("{not json")
    with pytest.raises(LearnError, match="not a learning loop state"):
        LoopState.read(tmp_path)


def test_learn_settings_seqs_select_the_arrival_window(tmp_path):
    log_path = tmp_path / "log.db"
    _append(log_path, 0)
    with DecisionLog.open(log_path) as log:
        assert log.max_seq() == BATCH
        data = read_decisions(log, CONFIG, _settings().learn_settings(100, 250))
        chunks = list(log.iter_joined(40, seqs=(100, 250)))
    np.testing.assert_array_equal(data.time, T0 + np.arange(100, 250))
    assert [len(c) for c in chunks] == [40, 40, 40, 30]


# Invalid loop settings: keyword arguments, and the message they must raise.
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"every_seconds": 0.0}, "every_seconds"),
        ({"wait_seconds": -1.0}, "wait_seconds"),
        ({"settle_seconds": float("nan")}, "settle_seconds"),
        ({"min_decisions": 0}, "min_decisions"),
        ({"fixed_arm_decisions": 1.5}, "fixed_arm_decisions"),
        ({"reward": "likes"}, "reward"),
    ],
)
def test_loop_settings_invalid(kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        LoopSettings(**kwargs)


def test_candidate_lineage_refuses_a_candidate_learned_outside_the_loop(tmp_path):
    (tmp_path / "policy-0001.json").write_text(json.dumps({"learn_settings": {"seqs": None}, "parent": None}))
    with pytest.raises(LearnError, match="not learned by the learning loop"):
        candidate_lineage(tmp_path, "policy-0001.vw")
