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
    groups = [0, 0, 0, 1, 1, 1]  # each item names the group whose step just finished
    seen = []
    for index, item in enumerate(
        progress_by_group(
            groups, total=6, group=3, desc="comparing", what="seed", stream=stream, clock=lambda: next(ticks)
        )
    ):
        seen.append(item)
        # A group is reported done as its last item is drawn.
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1 + (index + 1) // 3
    assert seen == groups
    assert stream.getvalue().splitlines() == [
        "comparing: 2 seeds of 3 steps each",
        "comparing: seed 1/2 done (10 s elapsed)",
        "comparing: seed 2/2 done (20 s elapsed)",
    ]


def test_progress_by_group_reports_interleaved_groups_in_the_order_they_finish():
    stream = io.StringIO()
    groups = [0, 1, 1, 0, 2, 1, 2, 0, 2]  # three groups of three running side by side; 1 finishes first
    seen = []
    for item in progress_by_group(groups, total=9, group=3, desc="d", what="seed", stream=stream):
        seen.append(item)
        done = stream.getvalue().count(" done (")
        assert done == sum(seen.count(g) == 3 for g in set(seen))
    assert seen == groups
    lines = stream.getvalue().splitlines()
    assert [line.split(" done")[0] for line in lines[1:]] == ["d: seed 1/3", "d: seed 2/3", "d: seed 3/3"]


def test_progress_by_group_counts_a_short_group_when_exhausted():
    stream = io.StringIO()
    items = progress_by_group([0, 0, 1, 1, 2], total=5, group=2, desc="d", what="part", stream=stream)
    assert list(items) == [0, 0, 1, 1, 2]
    lines = stream.getvalue().splitlines()
    assert lines[0] == "d: 3 parts of 2 steps each"
    assert [line.split(" done")[0] for line in lines[1:]] == ["d: part 1/3", "d: part 2/3", "d: part 3/3"]


def test_progress_by_group_on_a_terminal_draws_a_bar_not_lines():
    stream = _Terminal()
    items = progress_by_group([0, 0, 1, 1], total=4, group=2, desc="comparing", what="seed", stream=stream)
    assert list(items) == [0, 0, 1, 1]
    assert "seed 1/2 done" not in stream.getvalue()
    assert "comparing" in stream.getvalue()
