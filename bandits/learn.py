"""Learning a knob policy from the decision log, and reading logged decisions as bandit data.

Decisions are joined with their feedback within a reward wait window (feedback later than the window stays
stored but is not learned from) and decisions without feedback get a default reward. Each logged arm is
mapped to its index in the current sections config by its stable id, so a reordered config still learns
correctly; decisions whose section or arm the config no longer has are skipped and counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bandits.context import HOUR_BUCKETS, PolicyContext
from bandits.dataset_read import LogDataset
from bandits.errors import LearnError
from bandits.knob_cells import choose_fields
from bandits.log import DecisionLog
from bandits.rewards import REWARDS, compute_rewards
from bandits.vw_policy import VWKnobPolicy, VWSettings, latest_policy
from heuristics import SectionsConfig


@dataclass(frozen=True)
class LearnSettings:
    """How a batch learning run turns the log into training examples.

    Attributes
    ----------
    reward : one of `bandits.rewards.REWARDS`
    wait_seconds : float or None
        Reward wait window; None admits all feedback.
    default_reward : float
        Reward of a decision without feedback within the window.
    since, until : float or None
        Decision-time window (Unix seconds, ``since <= time < until``).
    seqs : (after, through) or None
        Arrival window of a SQLite log: the decisions with ``after < seq <= through`` (`DecisionLog.max_seq`).
    vw : VWSettings
    """

    reward: str = "clicks"
    wait_seconds: float | None = 3600.0
    default_reward: float = 0.0
    since: float | None = None
    until: float | None = None
    seqs: tuple[int, int] | None = None
    vw: VWSettings = field(default_factory=VWSettings)

    def __post_init__(self) -> None:
        if self.reward not in REWARDS:
            raise LearnError(f"Expected `reward` in {', '.join(REWARDS)}, found {self.reward!r}")
        if self.wait_seconds is not None and not self.wait_seconds >= 0:
            raise LearnError(f"Expected `wait_seconds` >= 0, found {self.wait_seconds!r}")
        if self.seqs is not None and not 0 <= self.seqs[0] <= self.seqs[1]:
            raise LearnError(
                f"Expected `seqs` (after, through) with 0 <= after <= through, found {self.seqs!r}"
            )

    def window(self) -> dict[str, Any]:
        """The keyword arguments that select this window from a log (``seqs`` only when set: a Parquet
        dataset of logs has no arrival order)."""
        out: dict[str, Any] = {"since": self.since, "until": self.until}
        if self.seqs is not None:
            out["seqs"] = self.seqs
        return out


@dataclass(frozen=True)
class LoggedDecisions:
    """Logged decisions in the form learners and replay need.

    Attributes
    ----------
    context : PolicyContext (B rows)
    arm_index : (B,) int64
        Index of the logged arm in the current sections config.
    propensity : (B,) float64
    reward : (B,) float64
    arm_probs : list of B arrays
        The logging policy's whole distribution, re-indexed to the current config's arm order.
    time : (B,) float64
    has_feedback : (B,) bool
    skipped : dict
        Decisions left out, by reason.
    """

    context: PolicyContext
    arm_index: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    arm_probs: list[np.ndarray]
    time: np.ndarray
    has_feedback: np.ndarray
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.arm_index)

    def take(self, rows: np.ndarray) -> LoggedDecisions:
        rows = np.asarray(rows)
        return LoggedDecisions(
            context=self.context.take(rows),
            arm_index=self.arm_index[rows],
            propensity=self.propensity[rows],
            reward=self.reward[rows],
            arm_probs=[self.arm_probs[i] for i in np.arange(len(self))[rows]],
            time=self.time[rows],
            has_feedback=self.has_feedback[rows],
            skipped=dict(self.skipped),
        )


def decisions_from_frame(
    frame: pd.DataFrame,
    sections: SectionsConfig,
    *,
    reward: str = "clicks",
    default_reward: float = 0.0,
) -> LoggedDecisions:
    """Logged decisions from a `DecisionLog.joined` frame, mapped onto the arms of `sections`."""
    skipped = {"unknown_section": 0, "unknown_arm": 0}
    index_of: dict[tuple[str, str], int] = {(s.name, a.id): a.index for s in sections for a in s.arms}
    keys = list(zip(frame["section"].astype(str), frame["arm_id"].astype(str), strict=True))
    arm_index = np.array([index_of.get(k, -1) for k in keys], dtype=np.int64)
    known_section = frame["section"].isin(list(sections.sections)).to_numpy()
    skipped["unknown_section"] = int((~known_section).sum())
    skipped["unknown_arm"] = int((known_section & (arm_index < 0)).sum())
    keep = arm_index >= 0
    frame = frame.loc[keep]
    arm_index = arm_index[keep]
    rewards = compute_rewards(
        reward,
        clicks=list(frame["clicks"]),
        conversions=list(frame["conversions"]),
        revenue=frame["revenue"].to_numpy(np.float64),
        explicit=frame["reward"].to_numpy(np.float64),
        has_feedback=frame["has_feedback"].to_numpy(bool),
        default=default_reward,
    )
    context = PolicyContext.from_records(list(frame["context"]), frame["section"].astype(str).to_numpy())
    return LoggedDecisions(
        context=context,
        arm_index=arm_index,
        propensity=frame["propensity"].to_numpy(np.float64),
        reward=rewards,
        arm_probs=_reindexed_probs(frame, sections),
        time=frame["time"].to_numpy(np.float64),
        has_feedback=frame["has_feedback"].to_numpy(bool),
        skipped=skipped,
    )


def _reindexed_probs(frame: pd.DataFrame, sections: SectionsConfig) -> list[np.ndarray]:
    """Logged arm distributions in the current config's arm order.

    The log stores each distribution in the arm order of its time; the pairs (logged arm index, arm id) of
    the chosen arms tell where each logged position lives now. Logged arms never chosen in the frame, or no
    longer configured, cannot be placed and are dropped (their probability is then missing from the sum).
    """
    out: list[np.ndarray] = [np.empty(0)] * len(frame)
    sections_col = frame["section"].astype(str).to_numpy()
    probs_col = frame["arm_probs"].to_numpy()  # one column lookup, not one per row
    for section in np.unique(sections_col):
        rows = np.flatnonzero(sections_col == section)
        cfg = sections[str(section)]
        current = {arm.id: arm.index for arm in cfg.arms}
        logged_index = frame["arm_index"].to_numpy(np.int64)[rows]
        ids = frame["arm_id"].astype(str).to_numpy()[rows]
        placement = {int(i): current[a] for i, a in zip(logged_index, ids, strict=True) if a in current}
        logged_rows = [np.asarray(probs_col[r], dtype=np.float64) for r in rows.tolist()]
        width = max((len(p) for p in logged_rows), default=0)
        logged = np.zeros((len(rows), width))
        for i, p in enumerate(logged_rows):
            logged[i, : len(p)] = p
        source = np.array([s for s in placement if s < width], dtype=np.int64)
        probs = np.zeros((len(rows), len(cfg.arms)))
        probs[:, [placement[s] for s in source.tolist()]] = logged[:, source]
        for row, p in zip(rows.tolist(), probs, strict=True):
            out[row] = p
    return out


def read_decisions(
    log: DecisionLog | LogDataset, sections: SectionsConfig, settings: LearnSettings
) -> LoggedDecisions:
    """The log's decisions in `settings`' time window, joined with feedback within the wait window."""
    frame = log.joined(settings.wait_seconds, **settings.window())
    return decisions_from_frame(
        frame, sections, reward=settings.reward, default_reward=settings.default_reward
    )


@dataclass
class _Tally:
    """Counts of the decisions streamed into a policy, for its metadata."""

    decisions: int = 0
    with_feedback: int = 0
    reward_sum: float = 0.0
    first: float = np.inf
    last: float = -np.inf
    by_section: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=lambda: {"unknown_section": 0, "unknown_arm": 0})

    def add(self, data: LoggedDecisions) -> None:
        self.decisions += len(data)
        self.with_feedback += int(data.has_feedback.sum())
        self.reward_sum += float(data.reward.sum())
        if len(data):
            self.first = min(self.first, float(data.time.min()))
            self.last = max(self.last, float(data.time.max()))
        for section, n in pd.Series(data.context.section).value_counts().items():
            self.by_section[str(section)] = self.by_section.get(str(section), 0) + int(n)
        for reason, n in data.skipped.items():
            self.skipped[reason] += n


def iter_decisions(
    log: DecisionLog | LogDataset,
    sections: SectionsConfig,
    settings: LearnSettings,
    *,
    chunk_size: int = 100_000,
) -> Iterator[LoggedDecisions]:
    """`read_decisions` chunk by chunk (`DecisionLog.iter_joined`, `LogDataset.iter_joined`), in log order."""
    for frame in log.iter_joined(chunk_size, wait_seconds=settings.wait_seconds, **settings.window()):
        yield decisions_from_frame(
            frame, sections, reward=settings.reward, default_reward=settings.default_reward
        )


def learn_policy(
    log: DecisionLog | LogDataset,
    sections: SectionsConfig,
    out_dir: str | Path,
    settings: LearnSettings | None = None,
    *,
    warm_start: str | Path | None = None,
    progress: Callable[[Iterable], Iterable] | None = None,
    chunk_size: int = 100_000,
) -> tuple[VWKnobPolicy, Path]:
    """Fit a VW knob policy on the log and save it as the next version in `out_dir`.

    The log is streamed into Vowpal Wabbit chunk by chunk (`chunk_size` decisions of a SQLite log, one
    shipped chunk of a dataset), so memory holds one chunk whatever the log's size; the model is the same as
    learning from the whole log at once. With `warm_start` (a policy file or directory; its latest version)
    learning continues from that model. `progress` wraps the chunks, e.g. in a progress bar.
    """
    settings = settings or LearnSettings()
    tally = _Tally()

    def chunks() -> Iterator[tuple]:
        stream = iter_decisions(log, sections, settings, chunk_size=chunk_size)
        for data in progress(stream) if progress else stream:
            tally.add(data)
            yield data.context, data.arm_index, data.reward, data.propensity

    started = time.perf_counter()
    parent = latest_policy(warm_start) if warm_start is not None else None
    choice = None
    if settings.vw.cells:
        # The cells layout's fields: a warm start keeps its parent's; else a first pass over the window
        # sums what the cross-validation needs (`bandits.knob_cells`), in bounded memory.
        if parent is not None:
            parent_policy = VWKnobPolicy.load(parent, sections)
            choice = parent_policy.cell_choice
            parent_policy.close()
        else:
            first_pass = iter_decisions(log, sections, settings, chunk_size=chunk_size)
            choice = choose_fields(
                ((d.context, d.arm_index, d.reward, d.propensity) for d in first_pass),
                sections,
                seed=settings.vw.seed,
            )
    policy = VWKnobPolicy(sections, settings.vw, cell_choice=choice).fit_chunks(chunks(), warm_start=parent)
    if tally.decisions == 0:
        policy.close()
        raise LearnError(
            f"{log.path}: no decisions to learn from in this window "
            f"(skipped: {tally.skipped['unknown_section']} of unknown sections, "
            f"{tally.skipped['unknown_arm']} of unknown arms)"
        )
    metadata = {
        "training_window": {
            "first_decision": tally.first,
            "last_decision": tally.last,
            "since": settings.since,
            "until": settings.until,
        },
        "counts": {
            "decisions": tally.decisions,
            "with_feedback": tally.with_feedback,
            "by_section": dict(sorted(tally.by_section.items())),
            "skipped": tally.skipped,
        },
        "reward": settings.reward,
        "mean_reward": tally.reward_sum / tally.decisions,
        "wait_seconds": settings.wait_seconds,
        "default_reward": settings.default_reward,
        "log": str(log.path),
        "parent": str(parent) if parent is not None else None,
        "training_seconds": time.perf_counter() - started,
        "learn_settings": {k: v for k, v in asdict(settings).items() if k != "vw"},
    }
    path = policy.save(out_dir, metadata)
    return policy, path


def context_matrix(context: PolicyContext) -> tuple[np.ndarray, tuple[str, ...]]:
    """Numeric context features (B, d) for reward models: one-hot section, segment, device, hour bucket,
    plus the candidate-set summary."""
    columns: dict[str, np.ndarray] = {}
    for name, values, levels in (
        ("section", context.section, None),
        ("segment", context.segment, None),
        ("device", context.device, None),
        ("hour", context.hour_bucket(), HOUR_BUCKETS),
    ):
        values = np.asarray(values, dtype=str)
        for level in levels or np.unique(values):
            columns[f"{name}={level}"] = (values == level).astype(np.float64)
    columns["fresh_share"] = np.asarray(context.fresh_share, dtype=np.float64)
    columns["category_entropy"] = np.asarray(context.category_entropy, dtype=np.float64)
    names = tuple(columns)
    return np.column_stack([columns[n] for n in names]), names
