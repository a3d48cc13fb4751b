"""Assignment of users to experiment variants: the documented hash (checked against a plain-Python reference),
stable across processes, shares respected within binomial bounds, experiments independent of each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bandits.errors import InvalidArgumentError
from bandits.experiment_assign import Experiment, Variant, hash_unit, split_label

MASK = 2**64 - 1


def reference_unit(experiment: str, user_id: object) -> float:
    """The module docstring's hash, byte by byte in Python integers."""
    h = 0xCBF29CE484222325
    for byte in f"{experiment}/{user_id}".encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    h ^= h >> 33
    return (h >> 11) / 2.0**53


def make(*shares: float, name: str = "exp") -> Experiment:
    variants = tuple(Variant(chr(ord("A") + i), s) for i, s in enumerate(shares))
    return Experiment(name, ("discover",), variants)


@pytest.mark.parametrize(
    "ids",
    [
        np.array([0, 1, -1, 17, 2**62, -(2**63)], dtype=np.int64),
        np.array(["u-1", "", "ü", "日本", "a b", "x" * 40], dtype=object),
    ],
)
def test_hash_unit_matches_the_reference(ids):
    expected = np.array([reference_unit("exp", u) for u in ids.tolist()])
    np.testing.assert_array_equal(hash_unit("exp", ids), expected)


def test_assign_one_matches_assign():
    experiment = make(0.2, 0.3, 0.5)
    ids = np.arange(-200, 3000)
    np.testing.assert_array_equal(experiment.assign(ids), [experiment.assign_one(int(u)) for u in ids])
    names = np.array([f"user-{i}" for i in range(500)], dtype=object)
    np.testing.assert_array_equal(experiment.assign(names), [experiment.assign_one(u) for u in names])


def test_assignment_is_stable_across_processes_and_hash_seeds():
    ids = list(range(50)) + [f"s{i}" for i in range(50)]
    script = (
        "import json, sys, numpy as np\n"
        "from bandits.experiment_assign import Experiment, Variant\n"
        "e = Experiment('exp', ('discover',), (Variant('A', 0.5), Variant('B', 0.5)))\n"
        "ids = json.loads(sys.argv[1])\n"
        "print(json.dumps([e.assign_one(u) for u in ids]))\n"
    )
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", script, json.dumps(ids)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    here = [make(0.5, 0.5).assign_one(u) for u in ids]
    assert runs[0] == runs[1] == here
    assert 0 < sum(here) < len(here)


@pytest.mark.parametrize("shares", [(0.5, 0.5), (0.1, 0.3, 0.6), (0.01, 0.99)])
def test_assignment_shares_within_binomial_bounds(shares):
    n = 100_000
    counts = np.bincount(make(*shares).assign(np.arange(n)), minlength=len(shares))
    for count, share in zip(counts, shares, strict=True):
        # 5 binomial standard deviations: a false failure about once in 1.7 million runs.
        assert abs(count - n * share) <= 5 * np.sqrt(n * share * (1 - share))


def test_assignment_of_two_experiments_is_independent():
    ids = np.arange(80_000)
    a = make(0.5, 0.5, name="one").assign(ids)
    b = make(0.5, 0.5, name="two").assign(ids)
    both = np.mean((a == 1) & (b == 1))
    assert abs(both - 0.25) <= 5 * np.sqrt(0.25 * 0.75 / len(ids))


def test_label_and_split_label():
    experiment = make(0.5, 0.5)
    assert experiment.label(1) == "exp/B"
    assert split_label("exp/B") == ("exp", "B")
    assert split_label("") == ("", "")


# Invalid experiments: (build, message).
BAD = [
    (lambda: Variant("A", 0.0), r"Expected `share` in \(0, 1\]"),
    (lambda: Variant("A/B", 0.5), "Expected variant name"),
    (lambda: Experiment("e", ("d",), (Variant("A", 1.0),)), "at least 2 variants"),
    (lambda: Experiment("e", ("d",), (Variant("A", 0.5), Variant("A", 0.5))), "distinct variant names"),
    (lambda: Experiment("e", ("d",), (Variant("A", 0.5), Variant("B", 0.4))), "sum to 1, found 0.9"),
    (lambda: Experiment("", ("d",), (Variant("A", 0.5), Variant("B", 0.5))), "Expected experiment name"),
    (lambda: Experiment("e", (), (Variant("A", 0.5), Variant("B", 0.5))), "at least one section"),
    (lambda: hash_unit("e", np.array([1.5])), "int or str user ids"),
    (lambda: hash_unit("e", np.zeros((2, 2), np.int64)), r"shape \(B,\)"),
    (lambda: make(0.5, 0.5).assign_one(1.5), "int or str user id"),
]


@pytest.mark.parametrize(("build", "message"), BAD)
def test_invalid_experiment_refused(build, message):
    with pytest.raises(InvalidArgumentError, match=message):
        build()
