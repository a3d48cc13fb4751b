"""Rewards from feedback, against a per-row reference."""

import math

import numpy as np
import pytest

from bandits.rewards import compute_rewards

CLICKS = [[0, 3], [], None, [1], [0, 1, 2]]
CONVERSIONS = [[3], [], None, [], [0, 2]]
REVENUE = np.array([12.5, 0.0, np.nan, 0.0, 7.0])
EXPLICIT = np.array([1.0, np.nan, np.nan, 0.25, 2.0])


def reference(kind, default=0.0):
    out = []
    for b, clicks in enumerate(CLICKS):
        if clicks is None:
            out.append(default)
        elif kind == "clicks":
            out.append(len(clicks))
        elif kind == "discounted_clicks":
            out.append(sum(1 / math.log2(p + 2) for p in clicks))
        elif kind == "conversions":
            out.append(len(CONVERSIONS[b]))
        elif kind == "revenue":
            out.append(REVENUE[b])
        else:
            out.append(default if math.isnan(EXPLICIT[b]) else EXPLICIT[b])
    return np.array(out)


@pytest.mark.parametrize("kind", ["clicks", "discounted_clicks", "conversions", "revenue", "explicit"])
@pytest.mark.parametrize("default", [0.0, -1.0])
def test_compute_rewards_matches_reference(kind, default):
    got = compute_rewards(
        kind, clicks=CLICKS, conversions=CONVERSIONS, revenue=REVENUE, explicit=EXPLICIT, default=default
    )
    np.testing.assert_allclose(got, reference(kind, default))


def test_discounted_clicks_closed_form():
    got = compute_rewards("discounted_clicks", clicks=[[0], [1], [0, 1]])
    np.testing.assert_allclose(got, [1.0, 1 / math.log2(3), 1 + 1 / math.log2(3)])


def test_compute_rewards_unknown_kind():
    with pytest.raises(ValueError, match="Expected a reward in"):
        compute_rewards("likes", clicks=[[]])
