"""The learning loop: read the served decision log after a durable watermark, gate, publish, keep learning.

`LearningLoop` runs beside the service (``sectionrank loop``). Each *cycle* takes the decisions that arrived
after the watermark and are learnable (below), and

1. **gates** the pending candidate (the policy learned through the watermark) on them: the candidate, the
   incumbent (the published version) and the best logged fixed arm (chosen on the decisions before the
   window) are valued with paired doubly robust estimates (`bandits.promote.run_gate`), and what the gate
   ships per section is published atomically as the next version of the policy directory
   (`bandits.promote.publish_decision`);
2. **learns**: the candidate continues learning on the same decisions (`bandits.learn.learn_policy` with
   ``warm_start``) and is saved as the next ``candidates/policy-NNNN.vw``;
3. **advances the watermark**: ``loop.json`` in the policy directory is replaced atomically (written,
   fsynced, renamed) with the new watermark and the new candidate.

The gate thus values each candidate on decisions it never learned from (progressive validation), and every
decision is learned once and used in one gate window once. The first cycle has no candidate to gate: it only
learns. A gate that refuses (a section with fewer than ``gate.min_decisions`` window decisions) publishes
nothing; learning goes on.

**Learnable decisions.** A decision's feedback counts when it comes within the reward wait window
(``wait_seconds`` after the decision). The loop counts a decision learnable once ``wait_seconds +
settle_seconds`` have passed since the loop first *saw* it in the log (``settle_seconds`` covers the
service's write queue, which commits feedback shortly after it is received). Arrival is tracked by the log's
``seq`` (which grows with every appended decision) and the loop's own clock, so decision times stamped by a
client (a simulation's clock) do not matter. After a restart the loop has seen nothing yet, so it waits one
window before learning again.

**Crash safety.** The watermark moves only after the candidate is saved. A loop killed at any point and
restarted repeats the interrupted cycle from the old watermark: the candidate it then learns is warm-started
from the old candidate again (a candidate file saved by the killed cycle is left unused), so no decision is
learned twice along the candidates' ``parent`` chain. A version the killed cycle already published is
recognised by the loop record in its ``version.json`` (the window and the candidate it gated) and is not
published again; the repeated cycle uses that version's window. Versions are published whole or not at all
(`bandits.shipped.publish_version`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bandits.base import KnobPolicy
from bandits.errors import GateError, InvalidArgumentError, LearnError
from bandits.learn import LearnSettings, learn_policy, read_decisions
from bandits.log import DecisionLog
from bandits.promote import GateDecision, GateSettings, best_logged_arms, publish_decision, run_gate
from bandits.rewards import REWARDS
from bandits.shipped import (
    CANDIDATES,
    ShippedPolicy,
    fsync_dir,
    is_policy_dir,
    list_versions,
    read_version,
    write_synced,
)
from bandits.vw_policy import VWKnobPolicy, VWSettings
from heuristics import SectionsConfig

#: The loop's durable state in the policy directory.
STATE_FILE = "loop.json"

#: The points of a cycle a `LearningLoop` hook is told about, in order.
STEPS = ("gated", "learned", "saved")


@dataclass(frozen=True)
class LoopSettings:
    """How the loop paces itself, what it learns from, and how it gates.

    Attributes
    ----------
    every_seconds : float > 0
        How often the loop looks for learnable decisions.
    min_decisions : int >= 1
        Fewest new learnable decisions a cycle needs; with fewer the loop waits.
    wait_seconds : float >= 0
        The reward wait window (the service's ``reward_wait_seconds``).
    settle_seconds : float >= 0
        Extra wait for the service's write queue to commit feedback.
    reward, default_reward
        As in `bandits.learn.LearnSettings`.
    fixed_arm_decisions : int >= 1
        The best logged fixed arm is chosen on at most this many decisions before the gate's window.
    gate : GateSettings
    vw : VWSettings
        The settings of the first candidate (later ones continue from it); by default those of
        ``sectionrank learn`` (the cells layout).
    """

    every_seconds: float = 60.0
    min_decisions: int = 1000
    wait_seconds: float = 1800.0
    settle_seconds: float = 2.0
    reward: str = "clicks"
    default_reward: float = 0.0
    fixed_arm_decisions: int = 100_000
    gate: GateSettings = field(default_factory=GateSettings)
    vw: VWSettings = field(default_factory=lambda: VWSettings(factored=True, cells=True))

    def __post_init__(self) -> None:
        for name, strict in (("every_seconds", True), ("wait_seconds", False), ("settle_seconds", False)):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if not number or value < 0 or (strict and value == 0):
                raise InvalidArgumentError(f"Expected `{name}` {'>' if strict else '>='} 0, found {value!r}")
        for name in ("min_decisions", "fixed_arm_decisions"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"Expected `{name}` an integer >= 1, found {value!r}")
        if self.reward not in REWARDS:
            raise InvalidArgumentError(f"Expected `reward` in {', '.join(REWARDS)}, found {self.reward!r}")

    def learn_settings(self, after: int, through: int) -> LearnSettings:
        """The decisions with ``after < seq <= through``, rewarded as configured."""
        return LearnSettings(
            reward=self.reward,
            wait_seconds=self.wait_seconds,
            default_reward=self.default_reward,
            seqs=(after, through),
            vw=self.vw,
        )


@dataclass(frozen=True)
class LoopState:
    """The loop's durable state (``loop.json``).

    Attributes
    ----------
    learned_through : int
        The watermark: every decision with ``seq <= learned_through`` has been learned.
    candidate : str or None
        The candidate learned through the watermark, relative to the policy directory.
    cycles : int
        Cycles completed.
    """

    learned_through: int = 0
    candidate: str | None = None
    cycles: int = 0

    @classmethod
    def read(cls, policy_dir: str | os.PathLike) -> LoopState:
        """The state of `policy_dir` (the initial state when the loop never completed a cycle there)."""
        path = Path(policy_dir) / STATE_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text())
            return cls(int(data["learned_through"]), data.get("candidate"), int(data.get("cycles", 0)))
        except (ValueError, KeyError, TypeError) as exc:
            raise LearnError(f"{path}: not a learning loop state ({exc})") from None

    def write(self, policy_dir: str | os.PathLike) -> None:
        """Replace ``loop.json`` atomically (write, fsync, rename, fsync the directory)."""
        directory = Path(policy_dir)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (STATE_FILE + ".tmp")
        write_synced(tmp, json.dumps(asdict(self), indent=2, sort_keys=True).encode())
        tmp.replace(directory / STATE_FILE)
        fsync_dir(directory)


@dataclass(frozen=True)
class CycleReport:
    """What one cycle did (`line` is the loop's log line).

    Attributes
    ----------
    cycle : int
        The number of the cycle (1 for the first).
    window : (after, through)
        The decisions of the cycle: ``after < seq <= through``.
    decisions, with_feedback : int
        Decisions learned, and those with feedback within the wait window.
    mean_reward : float
    gate : str
        ``published``, ``refused``, ``recovered`` (published by an interrupted run of this cycle) or
        ``no candidate`` (the first cycle).
    version : str or None
        The version published (or recovered).
    shipped : mapping section -> source
    differences : mapping section -> (estimate, low, high) of ``candidate - best alternative``
    reason : str
        Why the gate refused, when it did.
    candidate : str or None
        The candidate the cycle learned (relative to the policy directory).
    seconds : float
    """

    cycle: int
    window: tuple[int, int]
    decisions: int
    with_feedback: int
    mean_reward: float
    gate: str
    version: str | None = None
    shipped: dict[str, str] = field(default_factory=dict)
    differences: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    reason: str = ""
    candidate: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        """One line: counts, estimates and the decision."""
        head = (
            f"cycle {self.cycle}: {self.decisions} decisions (seq {self.window[0] + 1}..{self.window[1]}), "
            f"{self.with_feedback} with feedback, mean reward {self.mean_reward:.4f}"
        )
        if self.gate in ("published", "recovered"):
            parts = []
            for section, source in self.shipped.items():
                diff = self.differences.get(section)
                est = f" {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]" if diff else ""
                parts.append(f"{section} {source}{est}")
            gate = f"gate: {self.gate} version {self.version} ({'; '.join(parts)})"
        elif self.gate == "refused":
            gate = f"gate: refused ({self.reason})"
        else:
            gate = "gate: no candidate yet"
        learned = f"learned {self.candidate}" if self.candidate else "learned nothing"
        return f"{head}; {gate}; {learned}; {self.seconds:.2f} s"


class ArrivalClock:
    """When the loop first saw each decision: observations ``(time, max seq)``, and the highest seq seen at
    least `delay` seconds ago."""

    def __init__(self, delay: float) -> None:
        self.delay = float(delay)
        self._seen: deque[tuple[float, int]] = deque()

    def observe(self, now: float, max_seq: int) -> None:
        self._seen.append((float(now), int(max_seq)))

    def learnable(self, now: float) -> int:
        """The highest seq observed at or before ``now - delay`` (0 when none was)."""
        cutoff = float(now) - self.delay
        # max seq never decreases, so the answer is the last observation at or before the cutoff; those
        # before it are no longer needed.
        while len(self._seen) > 1 and self._seen[1][0] <= cutoff:
            self._seen.popleft()
        if self._seen and self._seen[0][0] <= cutoff:
            return self._seen[0][1]
        return 0


class LearningLoop:
    """The learner beside the service (module docstring).

    Parameters
    ----------
    log : DecisionLog
        The served decision log (opened by the caller; the loop only reads it).
    sections : SectionsConfig
    policy_dir : path
        Where versions are published (``versions/``, ``current``), candidates learned (``candidates/``) and
        the watermark kept (``loop.json``).
    settings : LoopSettings
    clock : callable
        Seconds now (default `time.time`).
    hook : callable, optional
        Told the name of each step of a cycle once it is done (`STEPS`), e.g. to report progress.
    fallback : KnobPolicy, optional
        What the service serves while the directory has no version (its ``policy_fallback``): the gate's
        status quo until the first version is published (`bandits.promote.run_gate`).
    """

    def __init__(
        self,
        log: DecisionLog,
        sections: SectionsConfig,
        policy_dir: str | os.PathLike,
        settings: LoopSettings | None = None,
        *,
        clock: Callable[[], float] = time.time,
        hook: Callable[[str], None] | None = None,
        fallback: KnobPolicy | None = None,
    ) -> None:
        self.log = log
        self.fallback = fallback
        self.sections = sections
        self.policy_dir = Path(policy_dir)
        self.settings = settings or LoopSettings()
        self.clock = clock
        self.hook = hook
        self.arrivals = ArrivalClock(self.settings.wait_seconds + self.settings.settle_seconds)

    @property
    def state(self) -> LoopState:
        return LoopState.read(self.policy_dir)

    def observe(self) -> int:
        """Note the log's last seq now; returns the seq through which decisions are learnable now."""
        now = self.clock()
        self.arrivals.observe(now, self.log.max_seq())
        return self.arrivals.learnable(now)

    def _step(self, name: str) -> None:
        if self.hook is not None:
            self.hook(name)

    def _recovered(self, state: LoopState) -> dict[str, Any] | None:
        """The latest version, when an interrupted run of this cycle published it (its loop record names
        this watermark and this candidate)."""
        versions = list_versions(self.policy_dir)
        if not versions or state.candidate is None:
            return None
        meta = read_version(self.policy_dir, versions[-1])
        record = meta.get("decision", {}).get("loop") or {}
        if record.get("after_seq") == state.learned_through and record.get("candidate") == state.candidate:
            return meta
        return None

    def run_cycle(self, through: int) -> CycleReport:
        """Gate the pending candidate on the decisions after the watermark through `through`, publish, learn
        on them, and advance the watermark."""
        started = time.perf_counter()
        state = self.state
        after = state.learned_through
        recovered = self._recovered(state)
        if recovered is not None:
            through = int(recovered["decision"]["loop"]["through_seq"])
        if through <= after:
            raise InvalidArgumentError(f"Expected `through` > the watermark {after}, found {through}")
        learn = self.settings.learn_settings(after, through)
        gate, version, shipped, differences, reason = "no candidate", None, {}, {}, ""
        if recovered is not None:
            gate, version = "recovered", recovered["version"]
            shipped = {s: spec["from"] for s, spec in recovered["sections"].items()}
        elif state.candidate is not None:
            try:
                version, decision = self._gate(state, after, through, learn)
            except GateError as exc:
                gate, reason = "refused", str(exc)
            else:
                gate = "published"
                shipped = decision.shipped()
                differences = {
                    s: (v.difference.value, v.difference.low, v.difference.high)
                    for s, v in decision.sections.items()
                    if v.difference is not None
                }
        self._step("gated")
        warm = self.policy_dir / state.candidate if state.candidate else None
        try:
            policy, path = learn_policy(
                self.log, self.sections, self.policy_dir / CANDIDATES, learn, warm_start=warm
            )
        except LearnError as exc:
            if "no decisions to learn from" not in str(exc):
                raise
            candidate, counts, mean_reward = state.candidate, {"decisions": 0, "with_feedback": 0}, 0.0
        else:
            policy.close()
            candidate = str(path.relative_to(self.policy_dir))
            counts, mean_reward = policy.metadata_["counts"], float(policy.metadata_["mean_reward"])
        self._step("learned")
        LoopState(learned_through=through, candidate=candidate, cycles=state.cycles + 1).write(
            self.policy_dir
        )
        self._step("saved")
        return CycleReport(
            cycle=state.cycles + 1,
            window=(after, through),
            decisions=int(counts["decisions"]),
            with_feedback=int(counts["with_feedback"]),
            mean_reward=mean_reward,
            gate=gate,
            version=version,
            shipped=shipped,
            differences=differences,
            reason=reason,
            candidate=candidate if candidate != state.candidate else None,
            seconds=time.perf_counter() - started,
        )

    def _gate(
        self, state: LoopState, after: int, through: int, learn: LearnSettings
    ) -> tuple[str, GateDecision]:
        assert state.candidate is not None
        settings = self.settings
        candidate_path = self.policy_dir / state.candidate
        candidate = VWKnobPolicy.load(candidate_path, self.sections)
        incumbent = (
            ShippedPolicy.load(self.policy_dir, self.sections) if is_policy_dir(self.policy_dir) else None
        )
        try:
            window = read_decisions(self.log, self.sections, learn)
            first = max(0, after - settings.fixed_arm_decisions)
            before = read_decisions(self.log, self.sections, settings.learn_settings(first, after))
            arms = best_logged_arms(
                before, self.sections, n_folds=settings.gate.n_folds, seed=settings.gate.seed
            )
            info = {
                "after_seq": after,
                "through_seq": through,
                "first_decision": float(window.time.min()) if len(window) else None,
                "last_decision": float(window.time.max()) if len(window) else None,
                "fixed_arm_window": {"after_seq": first, "through_seq": after, "decisions": len(before)},
                "log": str(self.log.path),
                "reward": settings.reward,
            }
            decision = run_gate(
                window,
                self.sections,
                candidate,
                incumbent=incumbent,
                fixed_arms={s: a for s, (a, _) in arms.items()},
                settings=settings.gate,
                window_info=info,
                fallback=self.fallback,
            )
            record = {
                "candidate": str(candidate_path),
                "candidate_sha256": candidate.metadata_.get("sha256"),
                "incumbent": incumbent.metadata.get("version") if incumbent is not None else None,
                "loop": {"after_seq": after, "through_seq": through, "candidate": state.candidate},
            }
            version = publish_decision(
                self.policy_dir,
                self.sections,
                decision,
                candidate_path,
                incumbent,
                record,
                fallback=self.fallback,
            )
        finally:
            candidate.close()
            if incumbent is not None:
                incumbent.close()
        return version, decision

    def run(
        self,
        *,
        once: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
        on_cycle: Callable[[CycleReport], None] | None = None,
        on_wait: Callable[[int, int], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[CycleReport]:
        """Run cycles until `should_stop` says so; with `once`, one cycle over what the log holds now.

        Every ``every_seconds`` the loop notes the log's last seq and runs a cycle when at least
        ``min_decisions`` decisions after the watermark are learnable. With `once` the decisions in the log
        now are learned after waiting until they are learnable (``wait_seconds + settle_seconds``); with
        fewer than ``min_decisions`` of them nothing is done. `on_wait` is told ``(learnable new decisions,
        min_decisions)`` when a check finds too few.
        """
        settings = self.settings
        reports: list[CycleReport] = []
        if once:
            target = self.log.max_seq()
            self.arrivals.observe(self.clock(), target)
            if target - self.state.learned_through < settings.min_decisions:
                if on_wait is not None:
                    on_wait(max(0, target - self.state.learned_through), settings.min_decisions)
                return reports
            while self.arrivals.learnable(self.clock()) < target and not should_stop():
                sleep(min(settings.every_seconds, 1.0))
            if should_stop():
                return reports
            report = self.run_cycle(target)
            if on_cycle is not None:
                on_cycle(report)
            return [report]
        step = min(settings.every_seconds, 1.0)
        next_check = self.clock()
        while not should_stop():
            through = self.observe()
            if self.clock() >= next_check:
                next_check = self.clock() + settings.every_seconds
                new = through - self.state.learned_through
                if new >= settings.min_decisions:
                    report = self.run_cycle(through)
                    reports.append(report)
                    if on_cycle is not None:
                        on_cycle(report)
                elif on_wait is not None:
                    on_wait(max(0, new), settings.min_decisions)
            sleep(step)
        return reports


def candidate_lineage(policy_dir: str | os.PathLike, candidate: str | None) -> list[tuple[int, int]]:
    """The ``(after, through)`` seq windows the candidate and its ``parent`` chain learned, oldest first.

    Each candidate continues learning from its parent, so the union of these windows is everything the
    candidate has learned; they are disjoint when no decision was learned twice.
    """
    windows: list[tuple[int, int]] = []
    path = Path(policy_dir) / candidate if candidate else None
    while path is not None:
        meta = json.loads(path.with_suffix(".json").read_text())
        seqs = (meta.get("learn_settings") or {}).get("seqs")
        if seqs is None:
            raise LearnError(f"{path}: not learned by the learning loop (no seq window in its metadata)")
        windows.append((int(seqs[0]), int(seqs[1])))
        parent = meta.get("parent")
        path = Path(parent) if parent else None
    return windows[::-1]


__all__ = [
    "STATE_FILE",
    "STEPS",
    "ArrivalClock",
    "CycleReport",
    "LearningLoop",
    "LoopSettings",
    "LoopState",
    "candidate_lineage",
]
