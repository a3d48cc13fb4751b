"""Progress off a terminal: one plain line per finished group (a seed of the comparison), items unchanged."""

from __future__ import annotations

import io
from itertools import count

from sectionrank.progress import progress_by_group


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_by_group_prints_a_line_per_finished_group_off_a_terminal():
    stream = io.StringIO()
    ticks = count(0.0, 10.0)  # every clock reading is 10 s after the one before
    seen = []
    for item in progress_by_group(
        range(6), total=6, group=3, desc="comparing", what="seed", stream=stream, clock=lambda: next(ticks)
    ):
        seen.append(item)
        # A group is reported done only once the next group's first item is drawn.
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1 + item // 3
    assert seen == list(range(6))
    assert stream.getvalue().splitlines() == [
        "comparing: 2 seeds of 3 steps each",
        "comparing: seed 1/2 done in 10 s (10 s elapsed)",
        "comparing: seed 2/2 done in 10 s (20 s elapsed)",
    ]


def test_progress_by_group_counts_a_short_last_group():
    stream = io.StringIO()
    items = progress_by_group(range(5), total=5, group=2, desc="d", what="part", stream=stream)
    assert list(items) == [0, 1, 2, 3, 4]
    lines = stream.getvalue().splitlines()
    assert lines[0] == "d: 3 parts of 2 steps each"
    assert [line.split(" done")[0] for line in lines[1:]] == ["d: part 1/3", "d: part 2/3", "d: part 3/3"]


def test_progress_by_group_on_a_terminal_draws_a_bar_not_lines():
    stream = _Terminal()
    items = progress_by_group(range(4), total=4, group=2, desc="comparing", what="seed", stream=stream)
    assert list(items) == [0, 1, 2, 3]
    assert "seed 1/2 done" not in stream.getvalue()
    assert "comparing" in stream.getvalue()
