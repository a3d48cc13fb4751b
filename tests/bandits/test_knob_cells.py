"""The cells layout's field selection (`bandits.knob_cells`) against a naive per-decision reference, on
synthetic truths whose answer is known, and the VW policy that learns with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bandits.context import PolicyContext
from bandits.errors import PolicyContractError
from bandits.knob_cells import (
    ALL_CELL,
    CELL_FIELDS,
    SHRINKAGE,
    CellChoice,
    CellTally,
    cell_keys,
    centered,
    knob_indicators,
    loss_difference,
    out_of_fold,
    select_fields,
)
from bandits.policies import UniformPolicy
from bandits.vw_policy import VWKnobPolicy, VWSettings, context_lines
from tests.bandits.policy_factories import CONFIG, make_context

SEARCH = CONFIG["search"]  # 9 arms: freshness weight x category cap


def _logged(context: PolicyContext, reward_of, seed: int):
    """Uniformly logged arms of `context` and their rewards: ``reward_of(context, arm_index)`` plus noise."""
    logged = UniformPolicy(CONFIG).choose(context, np.random.default_rng(seed))
    noise = np.random.default_rng(seed + 1).normal(0.0, 1.0, len(context))
    return logged.arm_index, reward_of(context, logged.arm_index) + noise, logged.propensity


def _fresh_weight(arm_index: np.ndarray, section=SEARCH) -> np.ndarray:
    return np.array([a.knobs["freshness.weight"] for a in section.arms])[arm_index]


def _flip(context: PolicyContext, arm_index: np.ndarray) -> np.ndarray:
    """Heavy users want the freshest arms, everyone else the stalest; desktop users click 2 more whatever the
    arm (a level no choice can change)."""
    sign = np.where(context.segment == "heavy", 1.0, -1.0)
    return 2.0 * sign * _fresh_weight(arm_index) + 2.0 * (context.device == "desktop")


def _tally(context, arm, reward, propensity, *, seed=0, chunk=None) -> CellTally:
    tally = CellTally(seed=seed)
    step = chunk or len(arm)
    for start in range(0, len(arm), step):
        rows = np.arange(start, min(start + step, len(arm)))
        tally.add(context.take(rows), arm[rows], reward[rows], propensity[rows])
    return tally


def _naive_out_of_fold(frame: pd.DataFrame, knobs: np.ndarray, fields: tuple[str, ...], folds: int):
    """Per decision, with explicit design matrices: the cell's ridge toward the section-wide ridge (itself
    toward zero), both learned on the other folds."""
    cell = (
        frame[list(fields)].astype(str).agg("|".join, axis=1) if fields else pd.Series("", index=frame.index)
    )
    x, w, r = knobs[frame["arm"].to_numpy()], frame["w"].to_numpy(), frame["r"].to_numpy()
    eye = np.eye(knobs.shape[1])
    out = np.empty(len(frame))
    for f in range(folds):
        train = frame["fold"].to_numpy() != f
        pooled = np.linalg.solve(
            x[train].T @ (w[train, None] * x[train]) + SHRINKAGE * eye, x[train].T @ (w[train] * r[train])
        )
        for key in cell.unique():
            fit = train & (cell == key).to_numpy()
            beta = np.linalg.solve(
                x[fit].T @ (w[fit, None] * x[fit]) + SHRINKAGE * eye,
                x[fit].T @ (w[fit] * r[fit]) + SHRINKAGE * pooled,
            )
            rows = (~train) & (cell == key).to_numpy()
            out[rows] = x[rows] @ beta
    return out


def test_out_of_fold_and_loss_difference_equal_a_naive_per_decision_computation() -> None:
    context = make_context(3_000, seed=3, section="search")
    arm, reward, propensity = _logged(context, _flip, seed=4)
    # Non-uniform weights, so that the weighted sums matter.
    propensity = propensity * np.random.default_rng(5).uniform(0.5, 1.0, len(arm))
    tally = _tally(context, arm, reward, propensity, seed=6)
    table = tally.table()
    knobs = knob_indicators(SEARCH)

    # Per decision: the same folds (the tally draws them in order from its seed).
    fold = np.random.default_rng(6).integers(0, tally.folds, len(arm))
    frame = pd.DataFrame(
        {
            "segment": context.segment,
            "device": context.device,
            "hour": context.hour_bucket(),
            "fold": fold,
            "arm": arm,
            "w": 1.0 / propensity,
            "r": reward,
        }
    )
    group = pd.MultiIndex.from_frame(table[[*CELL_FIELDS, "fold", "arm"]])
    at = group.get_indexer(pd.MultiIndex.from_frame(frame[[*CELL_FIELDS, "fold", "arm"]]))
    assert (at >= 0).all()

    before = out_of_fold(table, knobs, (), tally.folds)
    after = out_of_fold(table, knobs, ("segment", "device"), tally.folds)
    naive_before = _naive_out_of_fold(frame, knobs, (), tally.folds)
    naive_after = _naive_out_of_fold(frame, knobs, ("segment", "device"), tally.folds)
    np.testing.assert_allclose(before[at], naive_before, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(after[at], naive_after, rtol=1e-9, atol=1e-9)

    w = frame["w"].to_numpy()
    d = (reward - naive_before) ** 2 - (reward - naive_after) ** 2
    mean = (w * d).sum() / w.sum()
    se = np.sqrt((w**2 * (d - mean) ** 2).sum()) / w.sum()
    got_mean, got_se = loss_difference(table, before, after)
    assert got_mean == pytest.approx(mean, rel=1e-9)
    assert got_se == pytest.approx(se, rel=1e-9)


def test_centering_removes_each_finest_cells_level() -> None:
    context = make_context(2_000, seed=7, section="search")
    arm, reward, propensity = _logged(context, _flip, seed=8)
    table = centered(_tally(context, arm, reward, propensity).table())
    level = table.groupby(["section", *CELL_FIELDS])[["wr", "w"]].sum()
    np.testing.assert_allclose(level["wr"].to_numpy() / level["w"].to_numpy(), 0.0, atol=1e-9)


def test_tally_in_chunks_equals_one_tally() -> None:
    context = make_context(5_000, seed=9)
    arm, reward, propensity = _logged(context, lambda c, a: np.zeros(len(a)), seed=10)
    one = _tally(context, arm, reward, propensity, seed=3).table()
    chunked = _tally(context, arm, reward, propensity, seed=3, chunk=777).table()
    pd.testing.assert_frame_equal(one, chunked, check_exact=False, rtol=1e-12)
    assert one["w"].sum() == pytest.approx((1.0 / propensity).sum())


@pytest.mark.parametrize(
    ("truth", "expected"),
    [
        # The best arm flips with the segment; the device moves only the level.
        (_flip, ("segment",)),
        # The best arm flips with the device; the segment moves only the level.
        (
            lambda c, a: (
                2.0 * np.where(c.device == "mobile", 1.0, -1.0) * _fresh_weight(a)
                + 2.0 * (c.segment == "heavy")
            ),
            ("device",),
        ),
        # One best arm for everyone.
        (lambda c, a: 2.0 * _fresh_weight(a) + 2.0 * (c.segment == "heavy"), ()),
    ],
    ids=["segment", "device", "none"],
)
def test_selection_finds_the_field_that_changes_the_best_arm(truth, expected) -> None:
    context = make_context(6_000, seed=11, section="search")
    arm, reward, propensity = _logged(context, truth, seed=12)
    choice = select_fields(_tally(context, arm, reward, propensity, seed=13), CONFIG)
    assert choice.fields["search"] == expected
    # Sections without decisions get no field; every step is recorded.
    assert all(choice.fields[s.name] == () for s in CONFIG if s.name != "search")
    assert {step["field"] for step in choice.steps["search"]} == set(CELL_FIELDS)


def test_cell_keys_and_shared_lines_follow_each_sections_fields() -> None:
    context = PolicyContext(
        section=np.array(["search", "discover", "search"]),
        segment=np.array(["heavy", "heavy", "new"]),
        device=np.array(["mobile", "mobile", "desktop"]),
        hour=np.array([1, 13, 20]),
        fresh_share=np.zeros(3),
        category_entropy=np.zeros(3),
    )
    assert cell_keys(context, ()).tolist() == [ALL_CELL] * 3
    assert cell_keys(context, ("segment", "hour")).tolist() == [
        "heavy|night",
        "heavy|afternoon",
        "new|evening",
    ]
    choice = CellChoice(fields={"search": ("segment", "device"), "discover": ()})
    # VW's separator "|" inside a value is percent-encoded (`bandits.vw_format.escape`).
    assert context_lines(context, choice) == [
        "shared |U cell=heavy%7Cmobile",
        "shared |U cell=all",
        "shared |U cell=new%7Cdesktop",
    ]


def test_cells_policy_learns_the_flip_and_keeps_its_fields_through_save_and_load(tmp_path: Path) -> None:
    context = make_context(20_000, seed=14)
    search_rows = context.section == "search"

    def truth(c, a):
        out = np.zeros(len(a))
        rows = c.section == "search"
        out[rows] = _flip(c.take(np.flatnonzero(rows)), a[rows])
        return out

    arm, reward, propensity = _logged(context, truth, seed=15)
    policy = VWKnobPolicy(CONFIG, VWSettings(cells=True, epsilon=0.0, seed=1)).fit(
        context, arm, reward, propensity
    )
    assert policy.cell_choice.fields["search"] == ("segment",)
    test = make_context(500, seed=16, section="search")
    chosen = np.array([np.argmax(p) for p in policy.distribution(test)])
    fresh = _fresh_weight(chosen)
    weights = _fresh_weight(np.arange(len(SEARCH.arms)))
    heavy = test.segment == "heavy"
    assert (fresh[heavy] == weights.max()).all()
    assert (fresh[~heavy] == weights.min()).all()
    assert search_rows.any()

    path = policy.save(tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["feature_format"] == "cell-v1+section-knob-indicators-v1"
    assert meta["cells"]["fields"]["search"] == ["segment"]
    loaded = VWKnobPolicy.load(tmp_path, CONFIG)
    assert loaded.cell_choice.fields == policy.cell_choice.fields
    np.testing.assert_array_equal(np.stack(loaded.distribution(test)), np.stack(policy.distribution(test)))

    # A cells model whose fields are gone, or name an unknown field, is refused at load.
    for broken in (
        {k: v for k, v in meta.items() if k != "cells"},
        {**meta, "cells": {"fields": {"search": ["weather"]}}},
    ):
        path.with_suffix(".json").write_text(json.dumps(broken))
        with pytest.raises(PolicyContractError, match="cells layout's fields are missing or invalid"):
            VWKnobPolicy.load(tmp_path, CONFIG)
    loaded.close()
    policy.close()
