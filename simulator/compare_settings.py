"""The settings of a design comparison (`simulator.compare`), validated once, its presets, and the names its
strategies, sections and policies go by.

Two presets: `FULL` (the default of ``sectionrank compare``) and `QUICK` (``--quick``: a smaller log and fewer
evaluation requests per seed, the same number of seeds). Every size is per seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from ranker.feature_defs import FEATURES
from simulator.errors import CompareInputError
from simulator.world_config import WorldConfig

#: The section and segment value of rows that cover every section or segment.
ALL = "all"
#: The union strategies the stratification question trains the consolidated model with (``traffic`` first:
#: it is the consolidated model of every other question).
UNIONS = ("traffic", "equal", "business")
#: The outcome the conclusions are drawn on.
PRIMARY = "clicks"
#: Replay estimators (`bandits.ope`).
ESTIMATORS = ("ips", "snips", "dm", "dr", "replay")
#: Strategies in report order; the bounds first and last.
MAIN_STRATEGIES = (
    "random",
    "independent",
    "consolidated",
    "base",
    "base+default",
    "base+best_fixed",
    "base+best_fixed_logged",
    "base+bandit",
    "base+context_oracle",
    "consolidated+bandit",
    "oracle",
)
#: Strategies that serve through a knob policy, whose arm choices are recorded.
POLICY_STRATEGIES = (
    "base+default",
    "base+best_fixed",
    "base+best_fixed_logged",
    "base+bandit",
    "base+context_oracle",
    "consolidated+bandit",
)
#: Shares of the bandit's learning window (its latest part) of the knobs' learning curve; the whole window
#: is ``base+bandit`` itself.
KNOB_CURVE_SHARES = (0.25, 0.5)
#: Share of the knob window (its earlier part, in time) the bandit and the best logged fixed arms learn on;
#: the promotion gate decides on the rest.
KNOB_LEARN_SHARE = 0.5
#: How ``base+best_fixed_logged`` chooses each section's arm on the log's learning window.
FIXED_LOGGED_ESTIMATOR = "dr"
#: Replay targets: name -> the strategy whose knob policy it is.
REPLAY_POLICIES = {"bandit": "base+bandit", "default": "base+default", "best_fixed": "base+best_fixed"}
#: The section the base ranker does not serve: the independent model of that section is paired with it.
BASE_PAIR_SECTION = "search"
#: The features the feature check (question 7) can remove: the section-context features.
CHECKABLE_FEATURES = tuple(name for name, spec in FEATURES.items() if spec.context is not None)


def union_strategy(union: str) -> str:
    """The strategy name of the consolidated model trained with a union (``traffic`` is ``consolidated``)."""
    return "consolidated" if union == "traffic" else f"consolidated[{union}]"


def knob_curve_strategy(share: float) -> str:
    """The strategy name of the bandit learned on a share of its learning window (1: ``base+bandit``)."""
    return "base+bandit" if share >= 1.0 else f"base+bandit@{share:g}"


def curve_strategy(design: str, share: float) -> str:
    """The strategy name of a curve model (at share 1 the main model of the design)."""
    return design if share >= 1.0 else f"{design}@{share:g}"


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CompareInputError(f"Expected `{name}` to be an integer >= {low}, found {value!r}")


@dataclass(frozen=True)
class CompareSettings:
    """What one comparison runs, per seed.

    Attributes
    ----------
    log_requests : int
        Requests logged under uniform knob exploration on the legacy scorer: the log every ranker learns
        from.
    knob_requests : int
        Requests of the knob window: fresh requests of the test window's period served by the base ranker
        with uniform knob exploration (`simulator.compare_knobs.log_knob_window`). The bandit learns on its
        first `KNOB_LEARN_SHARE`, the promotion gate decides on the rest, and the best logged fixed arms
        are chosen on the learning part.
    eval_requests : int
        Fresh evaluation requests, drawn after the log's training windows (the ranker's test window), on
        which every strategy is valued exactly.
    tune_requests : int
        Fresh requests (another seed, the same period) on which the best fixed arm is chosen.
    curve_shares : tuple of float in (0, 1]
        Shares of the curve section's own logged lists that the cross-learning curve trains with (1 is
        the full data, always added).
    curve_section : str or None
        The section of the cross-learning curve; None: the world's section with the least traffic.
    unions : tuple of str
        Union strategies of the stratification question, ``traffic`` first.
    estimators : tuple of str
        Replay estimators.
    n_bootstrap : int
        Bootstrap resamples of the replay intervals.
    threads : int
        Threads of LightGBM training and of the OpenMP and BLAS pools while the comparison runs. 1 by
        default: on 2 shared cores, pool threads that spin while they wait for a busy core slow training down
        by an order of magnitude.
    min_curve_lists : int
        At least this many lists with a positive label are kept in each subsampled window of the curve.
    feature_check : tuple of str
        Section-context features (`CHECKABLE_FEATURES`) the feature check (question 7) removes one at a time:
        the consolidated model and the carrying sections' independent models are retrained without each.
    feature_leak : bool
        Serve the models with the checked features through a feature function that computes each of them
        in every section whose request carries its context field (`FeatureBuilder.computing_everywhere`),
        the other sections' requests carrying the field: the classic feature-pipeline bug, injected.
    """

    log_requests: int = 60_000
    knob_requests: int = 120_000
    eval_requests: int = 8_000
    tune_requests: int = 4_000
    curve_shares: tuple[float, ...] = (0.01, 0.05, 0.2, 1.0)
    curve_section: str | None = None
    unions: tuple[str, ...] = UNIONS
    estimators: tuple[str, ...] = ESTIMATORS
    n_bootstrap: int = 200
    threads: int = 1
    min_curve_lists: int = 3
    feature_check: tuple[str, ...] = ()
    feature_leak: bool = False

    def __post_init__(self) -> None:
        _check_int("log_requests", self.log_requests, 200)
        _check_int("knob_requests", self.knob_requests, 30)
        _check_int("eval_requests", self.eval_requests, 10)
        _check_int("tune_requests", self.tune_requests, 10)
        _check_int("n_bootstrap", self.n_bootstrap, 10)
        _check_int("threads", self.threads, 1)
        _check_int("min_curve_lists", self.min_curve_lists, 1)
        shares = tuple(self.curve_shares)
        if not shares or any(
            isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s) or not 0 < s <= 1
            for s in shares
        ):
            raise CompareInputError(f"Expected `curve_shares` in (0, 1], found {list(shares)!r}")
        object.__setattr__(self, "curve_shares", tuple(sorted({float(s) for s in (*shares, 1.0)})))
        if not self.unions or self.unions[0] != "traffic" or any(u not in UNIONS for u in self.unions):
            raise CompareInputError(
                f"Expected `unions` among {', '.join(UNIONS)}, starting with traffic, found "
                f"{list(self.unions)!r}"
            )
        if len(set(self.unions)) != len(self.unions):
            raise CompareInputError(f"Expected distinct `unions`, found {list(self.unions)!r}")
        checked = (self.feature_check,) if isinstance(self.feature_check, str) else tuple(self.feature_check)
        if any(f not in CHECKABLE_FEATURES for f in checked) or len(set(checked)) != len(checked):
            raise CompareInputError(
                f"Expected distinct `feature_check` features among {', '.join(CHECKABLE_FEATURES)}, found "
                f"{list(checked)!r}"
            )
        object.__setattr__(self, "feature_check", checked)
        if not isinstance(self.feature_leak, bool):
            raise CompareInputError(
                f"Expected `feature_leak` to be true or false, found {self.feature_leak!r}"
            )
        if self.feature_leak and not checked:
            raise CompareInputError("Expected `feature_check` features with `feature_leak`, found none")
        unknown = [e for e in self.estimators if e not in ESTIMATORS]
        if not self.estimators or unknown:
            raise CompareInputError(
                f"Expected `estimators` among {', '.join(ESTIMATORS)}, found {list(self.estimators)!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def with_sizes(self, **changes: Any) -> CompareSettings:
        """A copy with some settings replaced (validated again)."""
        return replace(self, **changes)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


#: ``sectionrank compare`` without ``--quick``.
FULL = CompareSettings()
#: ``sectionrank compare --quick``: the whole comparison in under 3 minutes on the default world (2 cores),
#: with the feature check of source_similarity (similar_items' feature).
QUICK = CompareSettings(
    log_requests=20_000,
    knob_requests=60_000,
    eval_requests=3_000,
    tune_requests=1_500,
    n_bootstrap=100,
    feature_check=("source_similarity",),
)


def curve_section(world_config: WorldConfig, settings: CompareSettings) -> str:
    """The cross-learning curve's section: the configured one, or the world's least-trafficked section."""
    sections = world_config.sections
    if settings.curve_section is not None:
        if settings.curve_section not in sections:
            raise CompareInputError(
                f"Expected `curve_section` in {', '.join(sections)}, found {settings.curve_section!r}"
            )
        return settings.curve_section
    return min(sections, key=lambda s: (sections[s].traffic, list(sections).index(s)))
