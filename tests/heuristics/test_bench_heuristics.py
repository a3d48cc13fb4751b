"""The heuristics benchmark runs through the benchmark runner, and the runner writes a complete report."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import Timing, markdown_table, measure
from benchmarks.run import available, existing_sections, main


def test_bench_runner_writes_machine_facts_and_the_heuristics_section(tmp_path, capsys):
    out = tmp_path / "BENCHMARKS.md"
    assert main(["--quick", "--only", "heuristics", "--out", str(out)]) == 0
    text = out.read_text()
    for fact in ("cpu", "cores", "python", "numpy", "lightgbm"):
        assert re.search(rf"^\| {fact} \| \S", text, flags=re.M), fact
    assert re.search(r"^Last run: \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$", text, flags=re.M)
    section = existing_sections(text)["heuristics"]
    for case in (
        "discover, 500 candidates",
        "discover, 100 candidates",
        "discover, 100 x 100",
        "search, 500 candidates",
    ):
        row = re.search(rf"^\| {re.escape(case)} \| (\d+) \| ([\d,.]+) \| ([\d,.]+) \|", section, flags=re.M)
        assert row, case
        median, p99 = (float(x.replace(",", "")) for x in row.group(2, 3))
        assert 0 < median <= p99


def test_bench_runner_only_keeps_the_other_sections_of_the_file(tmp_path):
    others = [name for name in available() if name != "heuristics"]
    if not others:
        pytest.skip("no other benchmark module to keep")
    out = tmp_path / "BENCHMARKS.md"
    out.write_text(f"# old\n\n<!-- bench:{others[0]} -->\nkept as it was\n<!-- /bench:{others[0]} -->\n")
    main(["--quick", "--only", "heuristics", "--out", str(out)])
    sections = existing_sections(out.read_text())
    assert sections[others[0]] == "kept as it was"
    assert "heuristics" in sections


def test_bench_runner_refuses_an_unknown_benchmark(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--only", "nonesuch"])
    assert caught.value.code == 2
    assert "unknown benchmark nonesuch" in capsys.readouterr().err


def test_bench_measure_times_every_repeat_and_reports_percentiles():
    calls = []
    timing = measure("case", calls.append, repeats=50, warmup=3, per_call=10)
    assert calls == [0, 1, 2, *range(50)]
    assert timing.repeats == 50
    assert timing.median_us() == pytest.approx(np.median(timing.seconds) * 1e6)
    assert timing.median_us(per_unit=True) == pytest.approx(timing.median_us() / 10)
    fixed = Timing("fixed", np.array([1e-6] * 99 + [1e-3]))
    assert fixed.median_us() == pytest.approx(1.0)
    assert fixed.p99_us() == pytest.approx(np.percentile(fixed.seconds, 99) * 1e6)
    assert fixed.p99_us() > fixed.median_us()


def test_bench_markdown_table_right_aligns_numbers():
    table = markdown_table(["case", "n", "µs"], [["a", 1, "1,234"], ["b", 20, "5.5"]])
    assert table.splitlines()[1] == "| --- | ---: | ---: |"
    assert table.splitlines()[2] == "| a | 1 | 1,234 |"
