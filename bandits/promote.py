"""The promotion gate: ship a learned knob policy only where a later window of the log says it does not lose.

For every section, the gate values three policies on the same logged decisions of a window that comes after
the candidate's training window, with doubly robust estimates (`bandits.ope.DoublyRobust`) that share one
cross-fitted reward model, so that their differences are *paired*:

- the **candidate** (a policy learned by ``sectionrank learn``),
- the **incumbent** (the published version of the policy directory, when there is one) or, before any
  version is published, the **fallback** the service serves meanwhile (uniform exploration by default), so
  the status quo is always a contender and nothing ships that the window says loses to it,
- the **best logged fixed arm**: the section's arm with the highest DR estimate on the decisions *before*
  the window (`best_logged_arms`), as a team without a simulator would choose a fixed arm.

The rule, per section, with the *status quo* S (the incumbent, or before any version the fallback):

- a challenger (the candidate, the fixed arm) *passes* when the lower end of the percentile bootstrap
  interval of the paired difference ``challenger - S`` is above ``-margin``;
- of the challengers that pass, the one with the higher estimate ships;
- when none passes, an incumbent stays. Before a first version, the fixed arm ships unless the window shows
  it below the fallback (the upper end of ``best_fixed_logged - fallback`` below 0): the fallback was not
  chosen for its value (uniform exploration is worth the mean of the arms' values, at most the best arm's),
  and a window too small to certify the fixed arm does not make exploration the better choice.

So nothing ships that the window says loses to what serves now, and the candidate never ships
uncertified. Between two challengers that both pass, the point estimate decides: requiring the candidate to
beat the fixed arm by a significant margin as well would need windows many times larger than the gains on
offer can justify (docs/bandits.md has the measurement). Without a status quo (a library caller passing
neither an incumbent nor a fallback) the fixed arm is the alternative: the candidate ships when
``candidate - fixed arm`` passes, else the fixed arm ships (a fixed arm is a valid shipped policy).

Sections decide separately, because each section's knob arms are a separate choice. A section of the config
with no decision in the log keeps the incumbent's source (or, with no incumbent, the fallback, else its
default arm); a section with some decisions but fewer than ``min_decisions`` in the window makes the whole
gate refuse with `GateError`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bandits.base import KnobPolicy
from bandits.errors import GateError, InvalidArgumentError
from bandits.learn import LearnSettings, LoggedDecisions, read_decisions
from bandits.log import DecisionLog
from bandits.ope import (
    DoublyRobust,
    LoggedBandit,
    bootstrap_ratios,
    cross_fit_qhat,
    percentile_interval,
    prepare,
)
from bandits.policies import FixedArmPolicy
from bandits.replay import logged_bandit, target_distribution
from bandits.shipped import (
    CANDIDATES,
    ShippedPolicy,
    fallback_source,
    is_policy_dir,
    publish_version,
)
from bandits.vw_policy import VWKnobPolicy, latest_policy
from heuristics import SectionsConfig

#: The policies the gate values, in report order.
CONTENDERS = ("candidate", "incumbent", "fallback", "best_fixed_logged")


@dataclass(frozen=True)
class GateSettings:
    """How the gate decides.

    Attributes
    ----------
    margin : float >= 0
        The candidate ships when the lower end of its paired interval against the best alternative is above
        ``-margin`` (0: it must be significantly better; m: the interval must rule out a loss of more than m).
    min_decisions : int >= 1
        Fewest window decisions a logged section needs for the gate to decide.
    n_bootstrap : int
        Bootstrap resamples of the intervals.
    alpha : float in (0, 1)
        1 - the intervals' nominal coverage (two-sided).
    n_folds : int
        Cross-fitting folds of the DR reward model.
    seed : int
        Seed of the folds and the resamples.
    """

    margin: float = 0.0
    min_decisions: int = 200
    n_bootstrap: int = 200
    alpha: float = 0.05
    n_folds: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.margin) and self.margin >= 0):
            raise InvalidArgumentError(f"Expected `margin` >= 0, found {self.margin!r}")
        if self.min_decisions < 1:
            raise InvalidArgumentError(f"Expected `min_decisions` >= 1, found {self.min_decisions!r}")
        if self.n_bootstrap < 10:
            raise InvalidArgumentError(f"Expected `n_bootstrap` >= 10, found {self.n_bootstrap!r}")
        if not 0 < self.alpha < 1:
            raise InvalidArgumentError(f"Expected `alpha` in (0, 1), found {self.alpha!r}")


@dataclass(frozen=True)
class Estimate:
    """A DR estimate (clicks per decision, or whichever reward) with its percentile bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class SectionVerdict:
    """What the gate decided for one section.

    Attributes
    ----------
    section : str
    decisions : int
        Window decisions of the section.
    shipped : str
        One of `bandits.shipped.SOURCES`.
    best_alternative : str or None
        What the candidate was compared with: the status quo (``incumbent`` or ``fallback``) when there is
        one, else ``best_fixed_logged``.
    fixed_arm : str or None
        The best logged fixed arm's id (chosen before the window).
    estimates : mapping contender -> Estimate
        DR estimates on the window (the incumbent's only when there is one).
    difference : Estimate or None
        Paired DR estimate of ``candidate - best alternative``.
    reason : str
        One sentence saying why.
    differences : mapping label -> Estimate
        Every paired difference the decision was made on, labelled ``"x - y"``.
    """

    section: str
    decisions: int
    shipped: str
    best_alternative: str | None
    fixed_arm: str | None
    estimates: Mapping[str, Estimate] = field(default_factory=dict)
    difference: Estimate | None = None
    reason: str = ""
    differences: Mapping[str, Estimate] = field(default_factory=dict)


@dataclass(frozen=True)
class GateDecision:
    """The gate's decision for every section, with the window and settings it was made on."""

    sections: Mapping[str, SectionVerdict]
    window: Mapping[str, Any]
    settings: GateSettings
    estimator: str = "dr"

    def shipped(self) -> dict[str, str]:
        """Section -> what ships."""
        return {s: v.shipped for s, v in self.sections.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "margin": self.settings.margin,
            "settings": asdict(self.settings),
            "window": dict(self.window),
            "sections": {s: asdict(v) for s, v in self.sections.items()},
        }


def fixed_arm_dr_values(logged: LoggedBandit, qhat: np.ndarray) -> np.ndarray:
    """(B, A) per-row DR values of every fixed arm: ``qhat[i, a] + 1[a_i = a] (r_i - qhat[i, a_i]) / p_i``.

    The mean of column a over a section's rows is the DR estimate of always choosing arm a there (the same as
    `bandits.ope.DoublyRobust` with a one-hot target and this qhat).
    """
    rows = np.arange(len(logged))
    residual = (logged.reward - qhat[rows, logged.action]) / logged.pscore
    values = qhat.copy()
    values[rows, logged.action] += residual
    return values


def best_logged_arms(
    decisions: LoggedDecisions, sections: SectionsConfig, *, n_folds: int = 3, seed: int = 0
) -> dict[str, tuple[int, np.ndarray]]:
    """Each logged section's best fixed arm by DR on `decisions`, with every arm's DR estimate.

    Returns
    -------
    mapping section -> (arm index, (A_s,) DR estimates of the section's arms)
    """
    if len(decisions) == 0:
        return {}
    logged = logged_bandit(decisions, sections)
    qhat = cross_fit_qhat(logged, n_actions=logged.n_actions, n_folds=min(n_folds, len(logged)), seed=seed)
    values = fixed_arm_dr_values(logged, qhat)
    out = {}
    section_of = np.asarray(decisions.context.section, dtype=str)
    for name in np.unique(section_of).tolist():
        n_arms = len(sections[name].arms)
        means = values[section_of == name, :n_arms].mean(axis=0)
        out[name] = (int(np.argmax(means)), means)
    return out


def choose_shipped(
    status: str | None, means: Mapping[str, float], versus: Mapping[str, Estimate], margin: float
) -> tuple[str, list[str]]:
    """The gate's rule for one section (module docstring).

    Parameters
    ----------
    status : ``"incumbent"``, ``"fallback"`` or None
        The status quo.
    means : mapping contender -> estimate
    versus : mapping challenger -> paired Estimate
        Each challenger's difference with what it must not lose to: the status quo, or without one (the
        candidate alone) the fixed arm.
    margin : float

    Returns
    -------
    (shipped, passing) : the contender that ships, and the challengers whose lower bound is above -margin.
    """
    passing = [name for name, e in versus.items() if e.low > -margin]
    if status is None:
        return ("candidate" if "candidate" in passing else "best_fixed_logged"), passing
    if passing:
        return max(passing, key=lambda n: means[n]), passing
    if status == "fallback" and versus["best_fixed_logged"].high >= 0:
        # Before a first version nothing was chosen to serve: the fallback (uniform by default) explores
        # while the log fills, and keeping it forgoes what the log already says. The fixed arm, which the
        # log chose, ships unless the window shows it below the fallback.
        return "best_fixed_logged", passing
    return status, passing


def _check_window(window: LoggedDecisions, sections: SectionsConfig, settings: GateSettings) -> None:
    section_of = np.asarray(window.context.section, dtype=str)
    names, counts = np.unique(section_of, return_counts=True)
    short = [(str(n), int(c)) for n, c in zip(names, counts, strict=True) if c < settings.min_decisions]
    if len(window) == 0:
        raise GateError(
            f"the window has no decisions; the gate needs at least {settings.min_decisions} per section"
        )
    if short:
        listing = ", ".join(f"{n} {c}" for n, c in short)
        raise GateError(
            f"too few decisions in the window to decide ({listing}); the gate needs at least "
            f"{settings.min_decisions} per section"
        )


def run_gate(
    window: LoggedDecisions,
    sections: SectionsConfig,
    candidate: KnobPolicy,
    *,
    incumbent: KnobPolicy | None,
    fixed_arms: Mapping[str, int],
    settings: GateSettings | None = None,
    window_info: Mapping[str, Any] | None = None,
    fallback: KnobPolicy | None = None,
) -> GateDecision:
    """Value the contenders on `window` with paired DR estimates and decide per section (module docstring).

    Parameters
    ----------
    window : LoggedDecisions
        The decisions after the candidate's training window.
    fixed_arms : mapping section -> arm index
        The best logged fixed arm of each section (from `best_logged_arms` on the earlier decisions);
        a section without one uses its default arm.
    window_info : mapping, optional
        Recorded as the decision's window (since, until, ...); the decision count is added.
    fallback : KnobPolicy, optional
        What the service serves while no version is published; a contender when there is no `incumbent`.

    Raises
    ------
    GateError
        A section of the window has fewer than ``settings.min_decisions`` decisions.
    """
    settings = settings or GateSettings()
    _check_window(window, sections, settings)
    logged = logged_bandit(window, sections)
    qhat = cross_fit_qhat(logged, n_actions=logged.n_actions, n_folds=settings.n_folds, seed=settings.seed)
    fixed = {s.name: fixed_arms.get(s.name, s.default_arm.index) for s in sections}
    policies: dict[str, KnobPolicy] = {
        "candidate": candidate,
        "best_fixed_logged": FixedArmPolicy(sections, fixed),
    }
    if incumbent is not None:
        policies["incumbent"] = incumbent
    elif fallback is not None:
        policies["fallback"] = fallback
    dr = DoublyRobust()
    values = {
        name: dr.round_values(prepare(logged, target_distribution(policy, window, sections), qhat=qhat)).value
        for name, policy in policies.items()
    }
    section_of = np.asarray(window.context.section, dtype=str)
    rng = np.random.default_rng(settings.seed)
    verdicts: dict[str, SectionVerdict] = {}
    for s in sections:
        rows = np.flatnonzero(section_of == s.name)
        if len(rows) == 0:
            shipped = (
                "incumbent" if incumbent is not None else "fallback" if fallback is not None else "default"
            )
            verdicts[s.name] = SectionVerdict(
                s.name, 0, shipped, None, None, reason="no decisions of this section in the window"
            )
            continue
        names = [n for n in CONTENDERS if n in values]
        means = {n: float(values[n][rows].mean()) for n in names}
        status = next((n for n in ("incumbent", "fallback") if n in values), None)
        # Each challenger and what it must not lose to (module docstring).
        against = (
            {"candidate": "best_fixed_logged"}
            if status is None
            else {"candidate": status, "best_fixed_logged": status}
        )
        diffs = {f"{x} - {y}": values[x][rows] - values[y][rows] for x, y in against.items()}
        reps = bootstrap_ratios(
            [values[n][rows] for n in names] + list(diffs.values()),
            [None] * (len(names) + len(diffs)),
            n_bootstrap=settings.n_bootstrap,
            rng=rng,
        )
        bounds = percentile_interval(reps, alpha=settings.alpha)
        estimates = {n: Estimate(means[n], *map(float, bounds[i])) for i, n in enumerate(names)}
        differences = {
            label: Estimate(float(d.mean()), *map(float, bounds[len(names) + j]))
            for j, (label, d) in enumerate(diffs.items())
        }
        versus = {x: differences[f"{x} - {y}"] for x, y in against.items()}
        shipped, passing = choose_shipped(status, means, versus, settings.margin)
        alternative = status or "best_fixed_logged"
        bounds_text = ", ".join(f"{label} lower bound {e.low:+.4f}" for label, e in differences.items())
        verdict = (
            f"{' and '.join(passing)} above" if passing else "none above"
        ) + f" -margin {-settings.margin + 0.0:+.4f}"
        if status is not None and len(passing) > 1:
            verdict += f"; {shipped} has the higher estimate"
        elif status == "fallback" and not passing:
            verdict += (
                "; no version yet and the fixed arm not shown below the fallback: best_fixed_logged ships"
                if shipped == "best_fixed_logged"
                else "; no version yet, and the fixed arm's upper bound against the fallback is below 0"
            )
        verdicts[s.name] = SectionVerdict(
            section=s.name,
            decisions=len(rows),
            shipped=shipped,
            best_alternative=alternative,
            fixed_arm=s.arms[fixed[s.name]].id,
            estimates=estimates,
            difference=differences[f"candidate - {alternative}"],
            reason=f"{bounds_text}: {verdict}",
            differences=differences,
        )
    info = {**dict(window_info or {}), "decisions": len(window)}
    return GateDecision(sections=verdicts, window=info, settings=settings)


def _learn_settings(meta: Mapping[str, Any], since: float | None, until: float | None) -> LearnSettings:
    """The candidate's reward settings (as it learned) over another time window."""
    return LearnSettings(
        reward=meta.get("reward", "clicks"),
        wait_seconds=meta.get("wait_seconds", 3600.0),
        default_reward=meta.get("default_reward", 0.0),
        since=since,
        until=until,
    )


def _window_start(meta: Mapping[str, Any]) -> float:
    """Just after the candidate's training window: its ``until`` when set, else after its last decision."""
    window = meta.get("training_window") or {}
    if window.get("until") is not None:
        return float(window["until"])
    if window.get("last_decision") is None:
        raise GateError("the candidate's metadata has no training window; give --since")
    return float(np.nextafter(float(window["last_decision"]), np.inf))


def _model_name(path: Path) -> str:
    return f"model-{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}.vw"


def promote(
    log: DecisionLog,
    sections: SectionsConfig,
    policy_dir: str | os.PathLike,
    *,
    candidate: str | os.PathLike | None = None,
    since: float | None = None,
    until: float | None = None,
    settings: GateSettings | None = None,
    fallback: KnobPolicy | None = None,
) -> tuple[str, GateDecision]:
    """Run the gate on `log` and publish what it ships as the next version of `policy_dir`.

    Parameters
    ----------
    candidate : path, optional
        A policy file or directory (its latest version); default ``policy_dir/candidates``.
    since, until : float, optional
        The window (Unix seconds, ``since <= time < until``); `since` defaults to the end of the candidate's
        training window, `until` to the end of the log. The best logged fixed arm is chosen on the decisions
        from the start of the candidate's training window up to `since`.

    Returns
    -------
    (version id, GateDecision)
    """
    settings = settings or GateSettings()
    policy_dir = Path(policy_dir)
    candidate_path = latest_policy(candidate if candidate is not None else policy_dir / CANDIDATES)
    cand = VWKnobPolicy.load(candidate_path, sections)
    incumbent = ShippedPolicy.load(policy_dir, sections) if is_policy_dir(policy_dir) else None
    try:
        meta = cand.metadata_
        since = _window_start(meta) if since is None else float(since)
        train_since = (meta.get("training_window") or {}).get("since")
        window = read_decisions(log, sections, _learn_settings(meta, since, until))
        before = read_decisions(log, sections, _learn_settings(meta, train_since, since))
        arms = best_logged_arms(before, sections, n_folds=settings.n_folds, seed=settings.seed)
        info = {
            "since": since,
            "until": until,
            "first_decision": float(window.time.min()) if len(window) else None,
            "last_decision": float(window.time.max()) if len(window) else None,
            "fixed_arm_window": {"since": train_since, "until": since, "decisions": len(before)},
            "log": str(log.path),
            "reward": meta.get("reward", "clicks"),
        }
        decision = run_gate(
            window,
            sections,
            cand,
            incumbent=incumbent,
            fixed_arms={s: a for s, (a, _) in arms.items()},
            settings=settings,
            window_info=info,
            fallback=fallback,
        )
        record = {
            "candidate": str(candidate_path),
            "candidate_sha256": meta.get("sha256"),
            "incumbent": incumbent.metadata.get("version") if incumbent is not None else None,
        }
        version = publish_decision(
            policy_dir, sections, decision, candidate_path, incumbent, record, fallback=fallback
        )
    finally:
        cand.close()
        if incumbent is not None:
            incumbent.close()
    return version, decision


def publish_decision(
    policy_dir: str | os.PathLike,
    sections: SectionsConfig,
    decision: GateDecision,
    candidate_path: Path,
    incumbent: ShippedPolicy | None,
    record: Mapping[str, Any],
    *,
    fallback: KnobPolicy | None = None,
) -> str:
    """Publish what `decision` ships per section as the next version of `policy_dir`; returns its id.

    A section that ships the candidate serves the model file `candidate_path`; one that ships the incumbent
    keeps the incumbent's source (its model copied into the new version); one that keeps the `fallback` serves
    it (`bandits.shipped.fallback_source`); a fixed arm is named by its id.
    `record` (candidate, incumbent, ...) is stored beside the decision in ``version.json``.
    """
    sources: dict[str, dict[str, Any]] = {}
    models: dict[str, Path] = {}
    for s in sections:
        verdict = decision.sections[s.name]
        if verdict.shipped == "candidate":
            name = _model_name(candidate_path)
            models[name] = candidate_path
            sources[s.name] = {"kind": "vw", "model": name, "from": "candidate"}
        elif verdict.shipped == "incumbent":
            assert incumbent is not None
            spec = dict(incumbent.specs[s.name])
            if spec["kind"] == "vw":
                models[spec["model"]] = incumbent.model_files()[spec["model"]]
            sources[s.name] = {**spec, "from": "incumbent"}
        elif verdict.shipped == "fallback":
            assert fallback is not None
            sources[s.name] = {**fallback_source(fallback, s.name), "from": "fallback"}
        else:
            arm = verdict.fixed_arm if verdict.shipped == "best_fixed_logged" else s.default_arm.id
            sources[s.name] = {"kind": "fixed", "arm": arm, "from": verdict.shipped}
    return publish_version(policy_dir, sources, models, {**decision.to_dict(), **record})
