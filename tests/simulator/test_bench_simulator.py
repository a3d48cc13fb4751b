"""The simulator benchmark runs through the benchmark runner and reports its throughput table."""

from __future__ import annotations

import re

import pytest

from benchmarks.run import existing_sections, main


@pytest.mark.slow
def test_bench_simulator_reports_requests_per_second(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    assert main(["--quick", "--only", "simulator", "--out", str(out)]) == 0
    section = existing_sections(out.read_text())["simulator"]
    for stage in ("`World.sample_requests`", "`LoggingPolicy.log`", "`DecisionLog` appends"):
        row = re.search(
            rf"^\| [^|]*{re.escape(stage)}[^|]*\| 20,000 \| ([\d.]+) \| ([\d,]+) \|", section, flags=re.M
        )
        assert row, stage
        seconds, per_second = float(row.group(1)), float(row.group(2).replace(",", ""))
        assert seconds > 0
        assert per_second == pytest.approx(20_000 / seconds, rel=0.05)
    assert re.search(r"Logged outcomes: 0\.\d+ clicks", section)
