"""The loop benchmark at smoke size: both cycles run, the second gates and publishes, the table adds up."""

from __future__ import annotations

import re

from benchmarks.bench_loop import run


def test_bench_loop_quick_runs_both_cycles_and_reports_the_second():
    text = run(quick=True)
    assert "One `LearningLoop` cycle over 5,000 new decisions" in text
    assert "| 1: learn (no candidate yet) | 5,000 |" in text
    row = re.search(
        r"\| 2: gate \+ publish 0001 \+ learn \| 5,000 \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", text
    )
    assert row is not None, text
    total, gate, learn = map(float, row.groups())
    assert gate + learn <= total + 0.01
