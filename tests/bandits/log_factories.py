"""Decision and feedback batches for the decision-log tests, and a field-by-field comparison of records."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from bandits.records import DecisionBatch, FeedbackBatch

T0 = 1_700_000_000.0


def make_decisions(
    n: int,
    *,
    seed: int,
    start: int = 0,
    str_ids: bool = False,
    with_scores: bool = True,
    sections: tuple[str, ...] = ("discover", "similar_items"),
) -> DecisionBatch:
    """n decisions with ragged candidate lists (some empty) and ragged arm distributions."""
    rng = np.random.default_rng(seed)
    n_cand = rng.integers(0, 12, size=n)
    n_shown = np.minimum(n_cand, rng.integers(0, 6, size=n))
    n_arms = rng.integers(1, 6, size=n)
    candidates = [rng.choice(10**6, size=k, replace=False) - 500_000 for k in n_cand]
    if str_ids:
        candidates = [np.array([f"item-{x}" for x in c], dtype=str) for c in candidates]
    arm_probs = [rng.dirichlet(np.ones(a)) for a in n_arms]
    arm_index = np.array([rng.integers(a) for a in n_arms], dtype=np.int64)
    user_id = rng.integers(-(2**62), 2**62, size=n)
    return DecisionBatch(
        event_id=np.array([f"ev-{start + i}" for i in range(n)]),
        time=T0 + start + np.cumsum(rng.random(n)),
        section=np.array([sections[i % len(sections)] for i in range(n)]),
        user_id=np.array([f"user-{u}" for u in user_id]) if str_ids else user_id,
        context=[
            {
                "device": ["ios", "android"][i % 2],
                "hour": int(rng.integers(24)),
                "segment": None,
                "embedding": rng.normal(size=2).tolist(),
                "query": 'café "ñ" \\ | :',
            }
            for i in range(n)
        ],
        candidates=candidates,
        shown=[c[:k] for c, k in zip(candidates, n_shown, strict=True)],
        arm_id=np.array([f"arm-{a}" for a in arm_index]),
        arm_index=arm_index,
        knobs=[{"freshness.half_life": 0.1 + 0.2, "mmr.lambda": float(rng.random())} for _ in range(n)],
        propensity=np.array([p[a] for p, a in zip(arm_probs, arm_index, strict=True)]),
        arm_probs=arm_probs,
        model_versions=[{"ranker": "r-7", "policy": f"p-{i % 3}"} for i in range(n)],
        shown_scores=[rng.normal(size=k) for k in n_shown] if with_scores else None,
    )


def make_feedback(decisions: DecisionBatch, *, seed: int, delay: np.ndarray | None = None) -> FeedbackBatch:
    rng = np.random.default_rng(seed)
    n = len(decisions)
    clicks = [np.flatnonzero(rng.random(len(s)) < 0.4) for s in decisions.shown]
    reward = rng.random(n)
    reward[::3] = np.nan
    return FeedbackBatch(
        event_id=decisions.event_id.copy(),
        time=decisions.time + (rng.exponential(30.0, size=n) if delay is None else delay),
        clicks=clicks,
        conversions=[c[: len(c) // 2] for c in clicks],
        revenue=np.round(rng.random(n) * 10, 2),
        reward=reward,
    )


def assert_values_equal(expected: object, actual: object, where: str) -> None:
    """Exact equality, element type included; an array compares with an array of the same kind of values."""
    if isinstance(expected, np.ndarray):
        assert isinstance(actual, np.ndarray), where
        assert actual.shape == expected.shape, where
        if expected.size:
            assert (actual.dtype.kind in "iu") == (expected.dtype.kind in "iu"), where
            # str ids read back as object arrays (lossless: fixed-width numpy strings drop trailing NULs)
            assert actual.dtype.kind != "O" or expected.dtype.kind in "OUT", where
        exp_list, act_list = expected.tolist(), actual.tolist()
        if expected.dtype.kind == "f":
            np.testing.assert_array_equal(actual, expected, err_msg=where)
        else:
            assert act_list == exp_list, where
            assert [type(v) for v in act_list] == [type(v) for v in exp_list], where
    else:
        assert actual == expected, where


def assert_batches_equal(expected: object, actual: object) -> None:
    """Every field of two DecisionBatch or FeedbackBatch records, row by row."""
    assert type(actual) is type(expected)
    for field in dataclasses.fields(expected):
        exp, act = getattr(expected, field.name), getattr(actual, field.name)
        if exp is None:
            assert act is None, field.name
        elif isinstance(exp, np.ndarray):
            assert_values_equal(exp, np.asarray(act), field.name)
        else:
            assert len(act) == len(exp), field.name
            for row, (e, a) in enumerate(zip(exp, act, strict=True)):
                assert_values_equal(e, a, f"{field.name}[{row}]")


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
