"""The click model's pure functions against naive per-slot loops and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator import click_model


def naive_repeats(groups: np.ndarray) -> np.ndarray:
    batch, k = groups.shape
    out = np.zeros((batch, k), dtype=np.int64)
    for b in range(batch):
        for p in range(k):
            out[b, p] = sum(groups[b, j] == groups[b, p] for j in range(p))
    return out


def naive_expected(base, category, subcategory, w_cat, w_sub, decay, conversion, price):
    """E[clicks], E[conversions], E[revenue] slot by slot, straight from the documented formulas."""
    batch, k = base.shape
    clicks, conversions, revenue = np.zeros(batch), np.zeros(batch), np.zeros(batch)
    for b in range(batch):
        for p in range(k):
            n_cat = sum(category[b, j] == category[b, p] for j in range(p))
            n_sub = sum(subcategory[b, j] == subcategory[b, p] for j in range(p))
            attract = 1.0 / (1.0 + math.exp(-(base[b, p] - w_cat[b] * n_cat - w_sub[b] * n_sub)))
            exam = (1.0 + p) ** -decay[b]
            clicks[b] += exam * attract
            conversions[b] += exam * attract * conversion[b, p]
            revenue[b] += exam * attract * conversion[b, p] * price[b, p]
    return clicks, conversions, revenue


@pytest.fixture
def slates():
    rng = np.random.default_rng(11)
    batch, k = 40, 12
    return {
        "base": rng.normal(-1.0, 1.5, (batch, k)),
        "category": rng.integers(0, 4, (batch, k)),
        "subcategory": rng.integers(0, 9, (batch, k)),
        "w_cat": rng.uniform(0.0, 1.0, batch),
        "w_sub": rng.uniform(0.0, 1.0, batch),
        "decay": rng.uniform(0.0, 2.0, batch),
        "conversion": rng.uniform(0.0, 0.5, (batch, k)),
        "price": rng.lognormal(3.0, 0.5, (batch, k)),
    }


def test_repeats_above_matches_naive_count():
    groups = np.random.default_rng(3).integers(0, 5, (30, 15))
    np.testing.assert_array_equal(click_model.repeats_above(groups), naive_repeats(groups))


def test_repeats_above_empty_slates():
    assert click_model.repeats_above(np.zeros((3, 0), dtype=np.int64)).shape == (3, 0)


def test_examination_falls_with_position():
    exam = click_model.examination(20, np.array([0.3, 1.0, 2.5]))
    np.testing.assert_allclose(exam[:, 0], 1.0)
    assert (np.diff(exam, axis=1) < 0).all()
    np.testing.assert_allclose(exam[1], 1.0 / np.arange(1, 21))


def test_examination_without_decay_is_flat():
    np.testing.assert_allclose(click_model.examination(5, np.zeros(2)), 1.0)


def test_sigmoid_matches_logistic_and_saturates():
    x = np.linspace(-30, 30, 61)
    np.testing.assert_allclose(click_model.sigmoid(x), 1.0 / (1.0 + np.exp(-x)), rtol=1e-12, atol=1e-15)
    extreme = click_model.sigmoid(np.array([-1e4, 1e4]))
    np.testing.assert_array_equal(extreme, [0.0, 1.0])


def test_satiated_logit_subtracts_weighted_repeats(slates):
    s = slates
    logit = click_model.satiated_logit(s["base"], s["category"], s["subcategory"], s["w_cat"], s["w_sub"])
    expected = (
        s["base"]
        - s["w_cat"][:, None] * naive_repeats(s["category"])
        - s["w_sub"][:, None] * naive_repeats(s["subcategory"])
    )
    np.testing.assert_allclose(logit, expected)


def test_expected_outcomes_match_naive_per_slot_loop(slates):
    s = slates
    logit = click_model.satiated_logit(s["base"], s["category"], s["subcategory"], s["w_cat"], s["w_sub"])
    exam = click_model.examination(s["base"].shape[1], s["decay"])
    fast = click_model.expected_outcomes(exam, click_model.sigmoid(logit), s["conversion"], s["price"])
    slow = naive_expected(**s)
    for got, want in zip(fast, slow, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_sample_outcomes_mean_agrees_with_expectation(slates):
    # Repeat the 40 slates 2,000 times; each draw's totals are independent, so their mean lies within
    # 4 standard errors of the exact expectation (a false alarm about once in 16,000 runs).
    s = slates
    draws = 2000
    logit = click_model.satiated_logit(s["base"], s["category"], s["subcategory"], s["w_cat"], s["w_sub"])
    exam = click_model.examination(s["base"].shape[1], s["decay"])
    attract = click_model.sigmoid(logit)
    exact = click_model.expected_outcomes(exam, attract, s["conversion"], s["price"])
    tile = (draws, 1)
    sampled = click_model.sample_outcomes(
        np.tile(exam, tile),
        np.tile(attract, tile),
        np.tile(s["conversion"], tile),
        np.tile(s["price"], tile),
        np.random.default_rng(5),
    )
    batch = len(s["base"])
    per_draw = {
        "clicks": sampled.clicks.sum(axis=1).reshape(draws, batch).sum(axis=1),
        "conversions": sampled.conversions.sum(axis=1).reshape(draws, batch).sum(axis=1),
        "revenue": sampled.revenue.reshape(draws, batch).sum(axis=1),
    }
    for name, totals in per_draw.items():
        se = totals.std(ddof=1) / np.sqrt(draws)
        assert abs(totals.mean() - getattr(exact, name).sum()) < 4 * se, name
    assert (sampled.conversions <= sampled.clicks).all()
