"""Run a simulation end to end: build a world, log under the logging policy, hand each chunk to a sink.

This is what ``sectionrank simulate`` calls; the sink is where the decision log writer plugs in.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandits.base import KnobPolicy
from bandits.records import DecisionBatch, FeedbackBatch
from heuristics import SectionsConfig
from simulator.logging_policy import LoggingPolicy, Progress
from simulator.world import World
from simulator.world_config import WorldConfig

Sink = Callable[[DecisionBatch, FeedbackBatch], None]


@dataclass(frozen=True)
class SimulationSummary:
    """Totals of a simulated log.

    Attributes
    ----------
    requests, clicks, conversions : int
    revenue : float
    by_section : Mapping[str, int]
        Requests per section.
    seconds : float
        Wall time of the whole run, sink included.
    """

    requests: int
    clicks: int
    conversions: int
    revenue: float
    by_section: Mapping[str, int]
    seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("inf")


def simulate(
    world: World | WorldConfig | str | Path,
    n_requests: int,
    *,
    seed: int = 0,
    exploration: str = "uniform",
    epsilon: float = 0.1,
    chunk: int = 2000,
    sections_config: SectionsConfig | None = None,
    sink: Sink | None = None,
    progress: Progress | None = None,
    knob_policy: KnobPolicy | None = None,
) -> SimulationSummary:
    """Log `n_requests` simulated requests and pass every chunk of decisions and feedback to `sink`.

    Parameters
    ----------
    world : World, WorldConfig, world name or path
        A built world, or the config to build one with `seed`.
    n_requests : int
    seed : int
        Seeds the world (when it is built here) and the logging policy.
    exploration, epsilon, sections_config
        As in `LoggingPolicy`.
    chunk : int
        Requests per chunk.
    sink : callable, optional
        Called as ``sink(decisions, feedback)`` for every chunk, e.g. a decision-log writer.
    progress : callable, optional
        Wraps the list of chunks (e.g. a tqdm progress bar).
    knob_policy : bandits.base.KnobPolicy, optional
        Draws the arms instead of the exploring policy that `exploration` names (see `LoggingPolicy`).
    """
    started = time.perf_counter()
    if not isinstance(world, World):
        world = World.build(world, seed)
    policy = LoggingPolicy(
        world, sections_config, exploration=exploration, epsilon=epsilon, seed=seed, knob_policy=knob_policy
    )
    clicks = conversions = 0
    revenue = 0.0
    sections: Counter[str] = Counter()
    for decisions, feedback in policy.log(n_requests, chunk=chunk, progress=progress):
        if sink is not None:
            sink(decisions, feedback)
        clicks += sum(len(c) for c in feedback.clicks)
        conversions += sum(len(c) for c in feedback.conversions)
        revenue += float(np.sum(feedback.revenue))
        sections.update(decisions.section.tolist())
    return SimulationSummary(
        requests=n_requests,
        clicks=clicks,
        conversions=conversions,
        revenue=revenue,
        by_section=dict(sorted(sections.items())),
        seconds=time.perf_counter() - started,
    )
