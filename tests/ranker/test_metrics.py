"""Ranking metrics: closed forms, invariants, and a naive one-list-at-a-time reference."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from ranker.errors import MetricInputError, RankerError
from ranker.metrics import (
    OVERALL,
    RankedLists,
    auc,
    bootstrap_ci,
    evaluate_lists,
    map_at_k,
    ndcg_at_k,
    recall_at_k,
)

# ------------------------------------------------------------------------------------ naive reference


def _gain(label: float, gain: str) -> float:
    return 2.0**label - 1.0 if gain == "exponential" else float(label)


def _dcg(ranked_labels: list[float], k: int, gain: str) -> float:
    total = 0.0
    for position, label in enumerate(ranked_labels, start=1):
        if position > k:
            break
        total += _gain(label, gain) / math.log2(position + 1)
    return total


def _stable_order(scores: list[float]) -> list[int]:
    """Indices best first; Python's sort is stable, so tied scores keep their input order."""
    return sorted(range(len(scores)), key=lambda i: -scores[i])


def naive_ndcg(labels: list[float], scores: list[float], k: int, gain: str, ties: str = "stable") -> float:
    ideal = _dcg(sorted(labels, reverse=True), k, gain)
    if ideal == 0:
        return 0.0
    if ties == "stable":
        return _dcg([labels[i] for i in _stable_order(scores)], k, gain) / ideal
    # Average over every order consistent with the scores (tied rows in any order).
    dcgs = [
        _dcg([labels[i] for i in perm], k, gain)
        for perm in itertools.permutations(range(len(labels)))
        if all(scores[perm[j]] >= scores[perm[j + 1]] for j in range(len(perm) - 1))
    ]
    return sum(dcgs) / len(dcgs) / ideal


def naive_ap(labels: list[float], scores: list[float], k: int) -> float:
    rel = [1 if labels[i] > 0 else 0 for i in _stable_order(scores)]
    n_rel = sum(rel)
    if n_rel == 0:
        return math.nan
    hits, total = 0, 0.0
    for position in range(1, min(k, len(rel)) + 1):
        if rel[position - 1]:
            hits += 1
            total += hits / position
    return total / min(k, n_rel)


def naive_recall(labels: list[float], scores: list[float], k: int, ties: str = "stable") -> float:
    n_rel = sum(1 for y in labels if y > 0)
    if n_rel == 0:
        return math.nan
    if ties == "stable":
        return sum(1 for i in _stable_order(scores)[:k] if labels[i] > 0) / n_rel
    found = [
        sum(1 for i in perm[:k] if labels[i] > 0)
        for perm in itertools.permutations(range(len(labels)))
        if all(scores[perm[j]] >= scores[perm[j + 1]] for j in range(len(perm) - 1))
    ]
    return sum(found) / len(found) / n_rel


def naive_auc(labels: list[float], scores: list[float]) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y > 0]
    neg = [s for y, s in zip(labels, scores, strict=True) if y <= 0]
    if not pos or not neg:
        return math.nan
    wins = 0.0
    for p in pos:
        for q in neg:
            wins += 1.0 if p > q else 0.5 if p == q else 0.0
    return wins / (len(pos) * len(neg))


def random_lists(
    seed: int, n_lists: int, max_len: int, tied_scores: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat labels, scores and list ids of lists of 1..max_len rows, rows shuffled across lists."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, max_len + 1, size=n_lists)
    ids = np.repeat(rng.permutation(n_lists) * 3 + 100, sizes)
    labels = rng.choice([0, 0, 0, 1, 2, 3], size=ids.size).astype(float)
    scores = rng.integers(0, 3, size=ids.size).astype(float) if tied_scores else rng.normal(size=ids.size)
    perm = rng.permutation(ids.size)
    return labels[perm], scores[perm], ids[perm]


def per_list(labels: np.ndarray, scores: np.ndarray, ids: np.ndarray):
    """(list id, labels, scores) of each list in sorted id order, rows in input order."""
    for list_id in np.unique(ids):
        mask = ids == list_id
        yield list_id, labels[mask].tolist(), scores[mask].tolist()


# ------------------------------------------------------------------------------------- closed forms


def test_ndcg_perfect_ranking_is_one():
    labels = np.array([3.0, 2.0, 1.0, 0.0, 2.0, 0.0])
    scores = np.array([4.0, 3.0, 2.0, 1.0, 5.0, 1.0])
    result = ndcg_at_k(labels, scores, group_sizes=[4, 2], k=3)
    np.testing.assert_allclose(result.values, [1.0, 1.0])
    assert result.mean == pytest.approx(1.0)


def test_auc_perfect_is_one_and_reversed_is_zero():
    labels = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    assert auc(labels, scores, group_sizes=[5]).values[0] == 1.0
    assert auc(labels, -scores, group_sizes=[5]).values[0] == 0.0


def test_ndcg_reversed_list_matches_hand_computation():
    # Labels 0, 1, 2 ranked in that order: DCG = 0 + (2^1-1)/log2(3) + (2^2-1)/log2(4).
    labels = np.array([0.0, 1.0, 2.0])
    scores = np.array([3.0, 2.0, 1.0])
    dcg = 1 / math.log2(3) + 3 / 2
    idcg = 3 + 1 / math.log2(3)
    assert ndcg_at_k(labels, scores, group_sizes=[3], k=3).values[0] == pytest.approx(dcg / idcg)
    # Linear gain: DCG = 1/log2(3) + 2/2, IDCG = 2 + 1/log2(3).
    linear = ndcg_at_k(labels, scores, group_sizes=[3], k=3, gain="linear").values[0]
    assert linear == pytest.approx((1 / math.log2(3) + 1) / (2 + 1 / math.log2(3)))
    # At k=1 the top row has label 0.
    assert ndcg_at_k(labels, scores, group_sizes=[3], k=1).values[0] == 0.0


def test_map_recall_auc_match_hand_computation():
    # Ranked relevance 1, 0, 1, 0 (scores 0.9 > 0.5 = 0.5 > 0.1; the tie keeps input order).
    labels = np.array([1.0, 0.0, 2.0, 0.0])
    scores = np.array([0.9, 0.5, 0.5, 0.1])
    # AP@10 = (P@1 + P@3) / min(10, 2) = (1 + 2/3) / 2;  AP@2 = P@1 / min(2, 2).
    assert map_at_k(labels, scores, group_sizes=[4], k=10).values[0] == pytest.approx(5 / 6)
    assert map_at_k(labels, scores, group_sizes=[4], k=2).values[0] == pytest.approx(0.5)
    # AP@1 normalises by min(1, 2) = 1.
    assert map_at_k(labels, scores, group_sizes=[4], k=1).values[0] == pytest.approx(1.0)
    assert recall_at_k(labels, scores, group_sizes=[4], k=2).values[0] == pytest.approx(0.5)
    # Tie-averaged recall@2: the tied pair at ranks 2-3 holds 1 relevant of 2 rows, one position above k.
    assert recall_at_k(labels, scores, group_sizes=[4], k=2, ties="average").values[0] == pytest.approx(0.75)
    # AUC: pairs (0.9, 0.5) win, (0.9, 0.1) win, (0.5, 0.5) tie, (0.5, 0.1) win -> 3.5 / 4.
    assert auc(labels, scores, group_sizes=[4]).values[0] == pytest.approx(0.875)


def test_ndcg_tie_average_matches_hand_computation():
    # Two tied rows, one relevant: the expected linear DCG is (1 + 1/log2(3)) / 2 over IDCG = 1.
    result = ndcg_at_k([1.0, 0.0], [0.5, 0.5], group_sizes=[2], gain="linear", ties="average")
    assert result.values[0] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_ndcg_ties_stable_rule_keeps_input_order():
    first = ndcg_at_k([1.0, 0.0], [0.5, 0.5], group_sizes=[2]).values[0]
    second = ndcg_at_k([0.0, 1.0], [0.5, 0.5], group_sizes=[2]).values[0]
    assert first == 1.0
    assert second == pytest.approx(1 / math.log2(3))


def test_metrics_lists_without_relevant_rows_follow_conventions():
    # List 0: no relevant row; list 1: all relevant; list 2: mixed.
    labels = np.array([0.0, 0.0, 1.0, 2.0, 1.0, 0.0])
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    sizes = [2, 2, 2]
    ndcg = ndcg_at_k(labels, scores, group_sizes=sizes)
    assert ndcg.values[0] == 0.0
    assert ndcg.n_defined == 3
    ignored = ndcg_at_k(labels, scores, group_sizes=sizes, ignore_empty=True)
    assert np.isnan(ignored.values[0])
    assert ignored.n_defined == 2
    assert ignored.mean == pytest.approx(np.mean(ignored.values[1:]))
    for metric in (map_at_k, recall_at_k):
        result = metric(labels, scores, group_sizes=sizes)
        assert np.isnan(result.values[0])
        assert not np.isnan(result.values[1:]).any()
        assert result.mean == pytest.approx(np.mean(result.values[1:]))
    roc = auc(labels, scores, group_sizes=sizes)
    assert np.isnan(roc.values[:2]).all()
    assert roc.values[2] == 0.0
    assert roc.mean == 0.0
    assert roc.n_defined == 1


def test_metrics_all_lists_undefined_give_nan_mean():
    result = map_at_k([0.0, 0.0], [1.0, 2.0], group_sizes=[2])
    assert np.isnan(result.mean)
    assert result.n_defined == 0


def test_metrics_k_beyond_list_length_uses_whole_list():
    labels = np.array([0.0, 1.0, 0.0])
    scores = np.array([3.0, 2.0, 1.0])
    assert ndcg_at_k(labels, scores, group_sizes=[3], k=50).values[0] == pytest.approx(1 / math.log2(3))
    assert recall_at_k(labels, scores, group_sizes=[3], k=50).values[0] == 1.0
    assert map_at_k(labels, scores, group_sizes=[3], k=50).values[0] == pytest.approx(0.5)


# -------------------------------------------------------------------------------- naive reference


@pytest.mark.parametrize("gain", ["exponential", "linear"])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_metrics_match_naive_reference_on_random_lists(gain: str, k: int):
    labels, scores, ids = random_lists(seed=k, n_lists=120, max_len=15)
    ndcg = ndcg_at_k(labels, scores, ids, k=k, gain=gain)
    ap = map_at_k(labels, scores, ids, k=k)
    rec = recall_at_k(labels, scores, ids, k=k)
    roc = auc(labels, scores, ids)
    expected_ids = []
    for i, (list_id, y, s) in enumerate(per_list(labels, scores, ids)):
        expected_ids.append(list_id)
        assert ndcg.values[i] == pytest.approx(naive_ndcg(y, s, k, gain), abs=1e-12)
        np.testing.assert_allclose(ap.values[i], naive_ap(y, s, k), atol=1e-12)
        np.testing.assert_allclose(rec.values[i], naive_recall(y, s, k), atol=1e-12)
        np.testing.assert_allclose(roc.values[i], naive_auc(y, s), atol=1e-12)
    np.testing.assert_array_equal(ndcg.list_ids, expected_ids)
    assert ap.mean == pytest.approx(np.nanmean(ap.values))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_metrics_match_naive_reference_with_tied_scores(k: int):
    labels, scores, ids = random_lists(seed=10 + k, n_lists=60, max_len=6, tied_scores=True)
    lists = RankedLists.build(labels, scores, ids)
    stable = ndcg_at_k(lists, k=k)
    averaged = ndcg_at_k(lists, k=k, gain="linear", ties="average")
    ap = map_at_k(lists, k=k)
    rec_stable = recall_at_k(lists, k=k)
    rec_avg = recall_at_k(lists, k=k, ties="average")
    roc = auc(lists)
    for i, (_, y, s) in enumerate(per_list(labels, scores, ids)):
        assert stable.values[i] == pytest.approx(naive_ndcg(y, s, k, "exponential"), abs=1e-12)
        assert averaged.values[i] == pytest.approx(naive_ndcg(y, s, k, "linear", ties="average"), abs=1e-12)
        np.testing.assert_allclose(ap.values[i], naive_ap(y, s, k), atol=1e-12)
        np.testing.assert_allclose(rec_stable.values[i], naive_recall(y, s, k), atol=1e-12)
        np.testing.assert_allclose(rec_avg.values[i], naive_recall(y, s, k, ties="average"), atol=1e-12)
        np.testing.assert_allclose(roc.values[i], naive_auc(y, s), atol=1e-12)


def test_metrics_group_sizes_equal_group_ids():
    rng = np.random.default_rng(5)
    sizes = rng.integers(1, 12, size=40)
    labels = rng.integers(0, 4, size=sizes.sum()).astype(float)
    scores = rng.normal(size=sizes.sum())
    ids = np.repeat(np.arange(40), sizes)
    for metric in (ndcg_at_k, map_at_k, recall_at_k, auc):
        by_sizes = metric(labels, scores, group_sizes=sizes)
        by_ids = metric(labels, scores, ids)
        np.testing.assert_array_equal(by_sizes.values, by_ids.values)
        np.testing.assert_array_equal(by_sizes.list_ids, np.arange(40))


def test_metrics_invariant_to_row_permutation_without_ties():
    labels, scores, ids = random_lists(seed=3, n_lists=50, max_len=10)
    perm = np.random.default_rng(9).permutation(labels.size)
    for metric in (ndcg_at_k, map_at_k, recall_at_k, auc):
        permuted = metric(labels[perm], scores[perm], ids[perm])
        np.testing.assert_allclose(metric(labels, scores, ids).values, permuted.values, atol=1e-12)


def test_metrics_string_list_ids_are_sorted():
    result = ndcg_at_k([1.0, 0.0, 1.0], [0.1, 0.2, 0.3], np.array(["b", "a", "b"]))
    np.testing.assert_array_equal(result.list_ids, ["a", "b"])
    assert result.values[0] == 0.0
    assert result.values[1] == 1.0


def test_metrics_empty_input_gives_no_lists():
    result = ndcg_at_k(np.empty(0), np.empty(0), group_sizes=np.empty(0, dtype=np.int64))
    assert result.values.shape == (0,)
    assert np.isnan(result.mean)


# ----------------------------------------------------------------------------------- invalid inputs

# (arguments, keyword options, error message pattern)
INVALID_METRIC_INPUTS = [
    (([1.0, 0.0], [0.5], None), {"group_sizes": [2]}, "same length"),
    (([1.0, -1.0], [0.5, 0.4], None), {"group_sizes": [2]}, r"`labels` >= 0, found -1.0 at row 1"),
    (([1.0, np.nan], [0.5, 0.4], None), {"group_sizes": [2]}, r"finite `labels`"),
    (([1.0, 0.0], [np.nan, 0.4], None), {"group_sizes": [2]}, r"`scores` without NaN, found NaN at row 0"),
    (([1.0, 0.0], ["x", 0.4], None), {"group_sizes": [2]}, r"`scores` to hold numbers"),
    (([[1.0, 0.0]], [[0.5, 0.4]], None), {"group_sizes": [2]}, r"`labels` of shape \(N,\)"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [2], "k": 0}, r"`k` to be an integer >= 1, found 0"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [2], "k": 2.5}, r"`k` to be an integer"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [2], "k": True}, r"`k` to be an integer"),
    (([1.0, 0.0], [0.5, 0.4], None), {}, r"exactly one of `group_ids` and `group_sizes`"),
    (([1.0, 0.0], [0.5, 0.4], [0, 0]), {"group_sizes": [2]}, r"exactly one of `group_ids`"),
    (([1.0, 0.0], [0.5, 0.4], [0]), {}, r"`group_ids` of length 2"),
    (([1.0, 0.0], [0.5, 0.4], [0.0, np.nan]), {}, r"`group_ids` without missing values, found one at row 1"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [3]}, r"`group_sizes` to sum to the number of rows 2"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [2, 0]}, r"`group_sizes` >= 1, found 0 at position 1"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [1.0, 1.0]}, r"integer `group_sizes`"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [2], "gain": "log"}, r"`gain` in"),
    (([1.0, 0.0], [0.5, 0.4], None), {"group_sizes": [2], "ties": "random"}, r"`ties` in"),
]


@pytest.mark.parametrize(("args", "options", "match"), INVALID_METRIC_INPUTS)
def test_ndcg_invalid_inputs_raise_named_errors(args, options, match):
    with pytest.raises(MetricInputError, match=match):
        ndcg_at_k(*args, **options)


@pytest.mark.parametrize("metric", [map_at_k, recall_at_k])
def test_metrics_reject_k_below_one(metric):
    with pytest.raises(MetricInputError, match=r"`k` to be an integer >= 1, found -3"):
        metric([1.0], [0.5], group_sizes=[1], k=-3)


def test_metric_errors_are_ranker_errors():
    with pytest.raises(RankerError):
        auc([1.0], [np.nan], group_sizes=[1])


def test_ranked_lists_reject_extra_arguments():
    lists = RankedLists.build([1.0, 0.0], [0.2, 0.1], group_sizes=[2])
    with pytest.raises(MetricInputError, match="no `scores`"):
        ndcg_at_k(lists, [0.2, 0.1])


# -------------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_mean_and_is_seeded():
    values = np.random.default_rng(0).beta(2, 5, size=500)
    first = bootstrap_ci(values, seed=7)
    assert first.low < first.mean < first.high
    assert first.mean == pytest.approx(values.mean())
    assert bootstrap_ci(values, seed=7) == first
    assert bootstrap_ci(values, seed=8) != first


def test_bootstrap_ci_width_matches_normal_approximation():
    values = np.random.default_rng(1).normal(size=2000)
    ci = bootstrap_ci(values, n_bootstrap=2000, alpha=0.05, seed=0)
    expected = 2 * 1.959964 * values.std(ddof=1) / math.sqrt(values.size)
    assert ci.high - ci.low == pytest.approx(expected, rel=0.1)


def test_bootstrap_ci_ignores_nan_values():
    values = np.array([0.2, np.nan, 0.4, 0.6, np.nan, 0.8] * 20)
    ci = bootstrap_ci(values, seed=0)
    assert ci.mean == pytest.approx(0.5)
    assert ci.n == 80
    assert 0.2 < ci.low < 0.5 < ci.high < 0.8


def test_bootstrap_ci_constant_values_give_a_point():
    ci = bootstrap_ci(np.full(30, 0.25), n_bootstrap=50)
    assert (ci.low, ci.mean, ci.high) == pytest.approx((0.25, 0.25, 0.25))


def test_bootstrap_ci_all_nan_gives_nan():
    ci = bootstrap_ci([np.nan, np.nan])
    assert np.isnan(ci.mean)
    assert np.isnan(ci.low)
    assert ci.n == 0


def test_bootstrap_ci_singleton_groups_equal_no_groups():
    values = np.random.default_rng(2).random(100)
    assert bootstrap_ci(values, groups=np.arange(100), seed=3) == bootstrap_ci(values, seed=3)


def test_bootstrap_ci_clusters_widen_correlated_values():
    # 40 users with 10 lists each; lists of one user share the user's value.
    user_values = np.random.default_rng(4).random(40)
    values = np.repeat(user_values, 10)
    users = np.repeat(np.arange(40), 10)
    by_list = bootstrap_ci(values, seed=0)
    by_user = bootstrap_ci(values, groups=users, seed=0)
    assert by_user.mean == pytest.approx(by_list.mean)
    assert (by_user.high - by_user.low) > 2 * (by_list.high - by_list.low)


# (keyword options, error message pattern)
INVALID_BOOTSTRAP_OPTIONS = [
    ({"n_bootstrap": 0}, r"`n_bootstrap` to be an integer >= 1, found 0"),
    ({"alpha": 0.0}, r"`alpha` in \(0, 1\), found 0.0"),
    ({"alpha": 1.5}, r"`alpha` in \(0, 1\)"),
    ({"seed": -1}, r"`seed` to be an integer >= 0"),
    ({"groups": [0, 1]}, r"`groups` of shape \(3,\)"),
]


@pytest.mark.parametrize(("options", "match"), INVALID_BOOTSTRAP_OPTIONS)
def test_bootstrap_ci_invalid_options_raise(options, match):
    with pytest.raises(MetricInputError, match=match):
        bootstrap_ci([0.1, 0.2, 0.3], **options)


# ------------------------------------------------------------------------------------------- evaluation


def _sectioned(seed: int = 0):
    labels, scores, ids = random_lists(seed=seed, n_lists=90, max_len=12)
    names = np.array(["home", "similar", "search"])
    sections = names[(ids // 3) % 3]
    return labels, scores, ids, sections


def test_evaluate_lists_rows_per_section_and_metric():
    labels, scores, ids, sections = _sectioned()
    frame = evaluate_lists(labels, scores, ids, sections, k=5, n_bootstrap=200)
    columns = ["section", "metric", "k", "mean", "ci_low", "ci_high", "n_lists", "n_defined"]
    assert list(frame.columns) == columns
    assert len(frame) == 4 * 4
    assert frame["section"].iloc[0] == OVERALL
    assert frame["section"].unique().tolist() == [OVERALL, *pd.unique(sections)]
    assert set(frame["metric"]) == {"ndcg@5", "map@5", "recall@5", "auc"}
    assert frame.groupby("section").size().eq(4).all()
    assert frame.loc[frame["metric"] == "auc", "k"].isna().all()
    defined = frame.dropna(subset=["mean"])
    assert (defined["ci_low"] <= defined["mean"]).all()
    assert (defined["mean"] <= defined["ci_high"]).all()


def test_evaluate_lists_means_match_naive_reference_per_section():
    labels, scores, ids, sections = _sectioned(seed=1)
    frame = evaluate_lists(labels, scores, ids, sections, k=3, n_bootstrap=50)
    frame = frame.set_index(["section", "metric"])
    values: dict[tuple[str, str], list[float]] = {}
    for list_id, y, s in per_list(labels, scores, ids):
        section = str(sections[ids == list_id][0])
        for key in (section, OVERALL):
            values.setdefault((key, "ndcg@3"), []).append(naive_ndcg(y, s, 3, "exponential"))
            values.setdefault((key, "map@3"), []).append(naive_ap(y, s, 3))
            values.setdefault((key, "auc"), []).append(naive_auc(y, s))
    for key, expected in values.items():
        assert frame.loc[key, "mean"] == pytest.approx(np.nanmean(expected), abs=1e-12)
        assert frame.loc[key, "n_lists"] == len(expected)
        assert frame.loc[key, "n_defined"] == int(np.sum(~np.isnan(expected)))


def test_evaluate_lists_overall_interval_equals_bootstrap_ci_of_the_first_stream():
    labels, scores, ids, sections = _sectioned(seed=2)
    frame = evaluate_lists(labels, scores, ids, sections, k=10, n_bootstrap=300, seed=4)
    row = frame[(frame["section"] == OVERALL) & (frame["metric"] == "map@10")].iloc[0]
    stream = np.random.default_rng(np.random.SeedSequence(4).spawn(4)[0])
    ci = bootstrap_ci(map_at_k(labels, scores, ids, k=10).values, n_bootstrap=300, seed=stream)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))


def test_evaluate_lists_is_seeded():
    labels, scores, ids, sections = _sectioned(seed=3)
    first = evaluate_lists(labels, scores, ids, sections, n_bootstrap=100, seed=1)
    again = evaluate_lists(labels, scores, ids, sections, n_bootstrap=100, seed=1)
    pd.testing.assert_frame_equal(first, again)
    other = evaluate_lists(labels, scores, ids, sections, n_bootstrap=100, seed=2)
    assert not np.allclose(first["ci_low"].to_numpy(), other["ci_low"].to_numpy(), equal_nan=True)


def test_evaluate_lists_without_sections_gives_overall_rows():
    labels, scores, ids, _ = _sectioned()
    frame = evaluate_lists(labels, scores, ids, metrics=("ndcg", "auc"), n_bootstrap=20)
    assert frame["section"].tolist() == [OVERALL, OVERALL]
    assert frame["metric"].tolist() == ["ndcg@10", "auc"]


# (keyword options, error message pattern)
INVALID_EVALUATE_OPTIONS = [
    ({"sections": np.array(["a", "b", "a", "a"])}, r"one section per list in `sections`, found 'a' and 'b'"),
    ({"sections": np.array(["a", "a"])}, r"`sections` of shape \(4,\)"),
    ({"sections": np.array(["a", None, "a", "a"], dtype=object)}, r"`sections` without missing values"),
    ({"metrics": ("ndcg", "mrr")}, r"`metrics` in"),
    ({"metrics": ()}, r"non-empty `metrics`"),
    ({"metrics": ("auc", "auc")}, r"distinct"),
    ({"k": 0}, r"`k` to be an integer >= 1"),
    ({"n_bootstrap": -5}, r"`n_bootstrap`"),
    ({"seed": 1.5}, r"`seed`"),
]


@pytest.mark.parametrize(("options", "match"), INVALID_EVALUATE_OPTIONS)
def test_evaluate_lists_invalid_options_raise(options, match):
    with pytest.raises(MetricInputError, match=match):
        evaluate_lists([1.0, 0.0, 1.0, 0.0], [0.4, 0.3, 0.2, 0.1], [7, 7, 8, 8], **options)
