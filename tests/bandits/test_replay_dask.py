"""Replay and learning over a decision-log dataset: the numbers of the SQLite log it was shipped from.

The partition sums run here in this process (``client=None``); tests/ranker/test_train_dask.py runs them on a
LocalCluster.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from bandits import replay_dask
from bandits.dataset import ship_log
from bandits.dataset_read import LogDataset
from bandits.learn import LearnSettings, learn_policy, read_decisions
from bandits.log import DecisionLog
from bandits.replay import parse_policy, replay_table
from bandits.replay_dask import SUMS, estimates_from_sums, replay_dataset
from bandits.vw_policy import VWKnobPolicy
from heuristics import SectionsConfig

SECTIONS = SectionsConfig.load()
POLICIES = ["uniform", "default", "epsilon:0.3", "fixed:discover=1,search=0"]
SETTINGS = LearnSettings(wait_seconds=3600.0)
#: Decisions per replay partition: one shipped chunk each, so that the sums add many partitions.
PARTITION = 700


@pytest.fixture(scope="module")
def shipped(sim_dir, tmp_path_factory):
    """The tiny simulated log shipped into a dataset in small chunks (many partitions)."""
    root = tmp_path_factory.mktemp("shipped") / "ds"
    with DecisionLog.open(sim_dir / "log.db") as log:
        ship_log(log, root, host="sim", chunk_size=700)
    return LogDataset.open(root)


def in_memory(source, estimators=("ips", "snips")) -> pd.DataFrame:
    decisions = read_decisions(source, SECTIONS, SETTINGS)
    policies = {spec: parse_policy(spec, SECTIONS) for spec in POLICIES}
    return replay_table(decisions, SECTIONS, policies, estimators=estimators, n_bootstrap=20)


def test_replay_sqlite_log_and_its_dataset_give_identical_estimates(sim_dir, shipped):
    with DecisionLog.open(sim_dir / "log.db") as log:
        expected = in_memory(log, ("ips", "snips", "dm", "dr", "replay"))
    pd.testing.assert_frame_equal(in_memory(shipped, ("ips", "snips", "dm", "dr", "replay")), expected)


@pytest.mark.parametrize("slice_rows", [50_000, 300])
def test_replay_partition_sums_equal_the_in_memory_ips_and_snips(sim_dir, shipped, monkeypatch, slice_rows):
    monkeypatch.setattr(replay_dask, "SLICE_ROWS", slice_rows)
    assert len(shipped.partitions(PARTITION)) >= 5
    with DecisionLog.open(sim_dir / "log.db") as log:
        expected = in_memory(log).set_index(["policy", "group", "estimator"])
    got = replay_dataset(
        shipped, SECTIONS, POLICIES, SETTINGS, estimators=("ips", "snips"), partition_rows=PARTITION
    )
    got = got.set_index(["policy", "group", "estimator"]).loc[expected.index]
    for column in ("value", "ess", "max_weight", "zero_weight_share"):
        np.testing.assert_allclose(got[column], expected[column], rtol=1e-9, atol=1e-12, err_msg=column)
    np.testing.assert_array_equal(got["n"], expected["n"])


def naive_interval(v: np.ndarray, d: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """The delta-method interval of sum(v) / sum(d), from the rows, one term at a time."""
    n = len(v)
    value = sum(v) / sum(d)
    variance = sum((vi - value * di) ** 2 for vi, di in zip(v, d, strict=True)) / (n - 1)
    se = (variance * n) ** 0.5 / abs(sum(d))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return value, value - z * se, value + z * se


@pytest.mark.parametrize("ratio", [False, True])
def test_replay_interval_from_sums_equals_the_naive_delta_method(rng, ratio):
    w = rng.exponential(size=300)
    r = rng.random(300)
    v, d = w * r, (w if ratio else np.ones(300))
    parts = np.array_split(np.arange(300), 7)
    rows = [
        {
            "policy": "p",
            "estimator": "e",
            "group": "g" if k % 2 else "h",
            "n": float(len(i)),
            "sum_w": w[i].sum(),
            "sum_w2": (w[i] ** 2).sum(),
            "max_w": w[i].max(),
            "n_zero": 0.0,
            "sum_v": v[i].sum(),
            "sum_v2": (v[i] ** 2).sum(),
            "sum_d": d[i].sum(),
            "sum_d2": (d[i] ** 2).sum(),
            "sum_vd": (v[i] * d[i]).sum(),
        }
        for k, i in enumerate(parts)
    ]
    table = estimates_from_sums(
        pd.DataFrame(rows, columns=["policy", "estimator", "group", *SUMS]), alpha=0.1
    )
    overall = table[table["group"] == "overall"].iloc[0]
    np.testing.assert_allclose(
        (overall["value"], overall["ci_low"], overall["ci_high"]), naive_interval(v, d, 0.1), rtol=1e-10
    )
    assert overall["ess"] == pytest.approx(w.sum() ** 2 / (w**2).sum(), rel=1e-12)
    assert overall["max_weight"] == w.max()
    assert overall["n"] == 300
    assert list(table["group"]) == ["overall", "g", "h"]


@pytest.mark.parametrize("slice_rows", [50_000, 300])
def test_replay_partition_dr_is_close_to_the_in_memory_dr(sim_dir, shipped, monkeypatch, slice_rows):
    monkeypatch.setattr(replay_dask, "SLICE_ROWS", slice_rows)
    with DecisionLog.open(sim_dir / "log.db") as log:
        expected = in_memory(log, ("dr",)).set_index(["policy", "group", "estimator"])
    got = replay_dataset(
        shipped, SECTIONS, POLICIES, SETTINGS, estimators=("dr",), sample_rows=2000, partition_rows=PARTITION
    )
    got = got.set_index(["policy", "group", "estimator"]).loc[expected.index]
    # A model fitted on a sample instead of cross-fitted on every row: inside each other's intervals.
    assert (got["value"] > expected["ci_low"]).all()
    assert (got["value"] < expected["ci_high"]).all()


def test_learn_sqlite_log_and_its_dataset_learn_identical_policies(sim_dir, shipped, tmp_path):
    with DecisionLog.open(sim_dir / "log.db") as log:
        from_log, _ = learn_policy(log, SECTIONS, tmp_path / "a", SETTINGS, chunk_size=333)
    from_dataset, _ = learn_policy(shipped, SECTIONS, tmp_path / "b", SETTINGS)
    assert from_dataset.model_bytes_ == from_log.model_bytes_
    assert from_dataset.metadata_["counts"] == from_log.metadata_["counts"]
    from_log.close(), from_dataset.close()


def test_learn_streamed_in_chunks_equals_one_fit_on_the_whole_log(sim_dir, tmp_path):
    with DecisionLog.open(sim_dir / "log.db") as log:
        streamed, _ = learn_policy(log, SECTIONS, tmp_path, SETTINGS, chunk_size=250)
        data = read_decisions(log, SECTIONS, SETTINGS)
    whole = VWKnobPolicy(SECTIONS, SETTINGS.vw).fit(
        data.context, data.arm_index, data.reward, data.propensity
    )
    assert streamed.model_bytes_ == whole.model_bytes_
    assert streamed.metadata_["counts"]["decisions"] == len(data)
    assert streamed.metadata_["mean_reward"] == pytest.approx(data.reward.mean(), rel=1e-12)
    streamed.close(), whole.close()
