"""Offline replay of a seed's knob policies on the log's test window, against the exact truth.

`replay_estimates` replays each policy (`bandits.replay.replay_table`: every estimator, bootstrap intervals)
on the logged decisions from the test window's start, and values the same policy exactly on those very
requests under the logging scorer (`simulator.policy_eval.arm_values`); `logged_requests` turns the logged
decisions back into the world's requests for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from bandits.base import KnobPolicy
from bandits.learn import LearnSettings, decisions_from_frame
from bandits.log import DecisionLog
from bandits.replay import replay_table
from heuristics import SectionsConfig
from simulator.compare_seed import ReplayEstimate
from simulator.compare_settings import ALL, PRIMARY, CompareSettings
from simulator.policy_eval import arm_values
from simulator.records import RequestBatch
from simulator.world import World

#: The group name `bandits.replay.replay_table` gives every section together.
_OVERALL = "overall"


def logged_requests(world: World, frame: pd.DataFrame) -> RequestBatch:
    """The requests of logged decisions (a `DecisionLog` frame of a simulated world) as a RequestBatch."""
    contexts = frame["context"].tolist()
    vocabulary = {word: i for i, word in enumerate(world.vocabulary.tolist())}
    queries = [str(c.get("query", "")) for c in contexts]
    width = max([len(q.split()) for q in queries] + [1])
    tokens = np.full((len(frame), width), -1, dtype=np.int64)
    for i, query in enumerate(queries):
        for j, word in enumerate(query.split()):
            tokens[i, j] = vocabulary[word]
    candidates = frame["candidates"].tolist()
    return RequestBatch(
        section=frame["section"].to_numpy().astype(str),
        user_id=frame["user_id"].to_numpy(np.int64),
        time=frame["time"].to_numpy(np.float64),
        device=np.array([str(c["device"]) for c in contexts]),
        hour=np.array([int(c["hour"]) for c in contexts], dtype=np.int64),
        segment=np.array([str(c["segment"]) for c in contexts]),
        source_item=np.array([int(c.get("source_item", -1)) for c in contexts], dtype=np.int64),
        category=np.array([int(c.get("category", -1)) for c in contexts], dtype=np.int64),
        query=np.array(queries),
        query_tokens=tokens,
        candidates=np.stack(candidates).astype(np.int64) if candidates else np.zeros((0, 0), np.int64),
    )


def _truth(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    policies: Mapping[str, KnobPolicy],
    seed: int,
) -> dict[tuple[str, str], float]:
    """(policy, section or "overall") -> the policy's exact expected clicks per request on `requests`."""
    values = arm_values(world, requests, sections, seed=seed)
    truth: dict[tuple[str, str], float] = {}
    for name, policy in policies.items():
        per_section = {s: values.per_request(policy, s, PRIMARY) for s in values.sections}
        for s, per_request in per_section.items():
            truth[(name, s)] = float(per_request.mean())
        truth[(name, _OVERALL)] = float(np.concatenate(list(per_section.values())).mean())
    return truth


def replay_estimates(
    world: World,
    log_path: Path,
    since: float,
    sections: SectionsConfig,
    policies: Mapping[str, KnobPolicy],
    settings: CompareSettings,
    seed: int,
) -> tuple[ReplayEstimate, ...]:
    """Replay estimates of `policies` on the log's decisions from `since` on, each with the exact truth of
    those requests under the logging scorer."""
    learn = LearnSettings(reward=PRIMARY)
    with DecisionLog.open(log_path) as log:
        frame = log.joined(learn.wait_seconds, since=since)
    frame = frame[frame["section"].isin(list(sections.sections))].reset_index(drop=True)
    decisions = decisions_from_frame(frame, sections, reward=PRIMARY, default_reward=learn.default_reward)
    table = replay_table(
        decisions,
        sections,
        dict(policies),
        estimators=settings.estimators,
        n_bootstrap=settings.n_bootstrap,
        seed=seed,
    )
    truth = _truth(world, logged_requests(world, frame), sections, policies, seed)
    return tuple(
        ReplayEstimate(
            policy=str(record["policy"]),
            section=ALL if str(record["group"]) == _OVERALL else str(record["group"]),
            estimator=str(record["estimator"]),
            value=float(record["value"]),
            ci_low=float(record["ci_low"]),
            ci_high=float(record["ci_high"]),
            truth=truth[(str(record["policy"]), str(record["group"]))],
            n=int(record["n"]),
        )
        for record in table.to_dict("records")
    )
