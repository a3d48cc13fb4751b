"""The ranker benchmark runs through the benchmark runner and reports training and scoring figures."""

from __future__ import annotations

import re

import pytest

from benchmarks.run import existing_sections, main


@pytest.mark.slow
def test_bench_ranker_reports_training_and_latency(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    assert main(["--quick", "--only", "ranker", "--out", str(out)]) == 0
    section = existing_sections(out.read_text())["ranker"]
    for design in ("base", "consolidated", "independent"):
        row = re.search(
            rf"^\| {design} \| ([\d,]+) \| [\d.]+ \| ([\d.]+) \| ([\d,]+) \|", section, flags=re.M
        )
        assert row, design
        rows, seconds, per_second = (float(g.replace(",", "")) for g in row.groups())
        # The table rounds seconds to 0.01 and rows per second to a whole number.
        assert rows / (seconds + 0.006) - 0.5 <= per_second <= rows / max(seconds - 0.006, 1e-3) + 0.5
    for size in (100, 500):
        for step in ("`FeatureBuilder.one`", "`Booster.predict`", "`RankerModel.score`"):
            line = re.search(
                rf"^\| \w+, {size} candidates \({re.escape(step)}[^|]*\| ([\d,.]+) \| ([\d,.]+) \|",
                section,
                flags=re.M,
            )
            assert line, (size, step)
            median, p99 = (float(g.replace(",", "")) for g in line.groups())
            assert 0 < median <= p99
    truth = {
        m.group(1): [float(v) if v != "-" else None for v in m.group(2).split(" | ")]
        for m in re.finditer(
            r"^\| (logged order|base|consolidated|independent) \| ([\d.| -]+) \|$", section, flags=re.M
        )
    }
    assert set(truth) == {"logged order", "base", "consolidated", "independent"}
    # Every model that serves a section ranks its candidates closer to the truth than the logged order.
    for model in ("consolidated", "independent"):
        assert all(m > lo for m, lo in zip(truth[model], truth["logged order"], strict=True))
