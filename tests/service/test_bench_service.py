"""The service benchmark's summary: the ratio of a whole request to the sum of its parts, and its one line."""

from __future__ import annotations

import re

import numpy as np

from benchmarks.bench_service import PARTS, InProcess, ratio_line


def test_bench_service_ratio_is_the_median_total_over_the_sum_of_median_parts():
    rng = np.random.default_rng(7)
    parts = {key: rng.uniform(0.01, 0.2, size=(3, 101)) for key in PARTS}
    total = rng.uniform(0.5, 2.0, size=(3, 101))
    measured = InProcess(parts, total)
    # A naive reference, one round at a time.
    expected = [
        float(np.median(total[r])) / sum(float(np.median(parts[key][r])) for key in PARTS) for r in range(3)
    ]
    np.testing.assert_allclose(measured.ratios(), expected, rtol=1e-12)


def test_bench_service_ratio_of_a_request_that_is_its_parts_is_one():
    parts = {key: np.full((2, 5), 0.1 * (i + 1)) for i, key in enumerate(PARTS)}
    total = np.full((2, 5), sum(0.1 * (i + 1) for i in range(len(PARTS))))
    np.testing.assert_allclose(InProcess(parts, total).ratios(), [1.0, 1.0])


def test_bench_service_ratio_line_is_the_documented_sentence():
    line = ratio_line({100: 1.2345, 500: 1.1})
    assert line == "in-process total / sum of parts: 1.23x at 100 candidates, 1.10x at 500 candidates"
    pattern = r"in-process total / sum of parts: [\d.]+x at 100 candidates, [\d.]+x at 500 candidates"
    assert re.fullmatch(pattern, line)
