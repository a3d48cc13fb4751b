"""Progress bars that show on a terminal, and plain progress lines (or nothing) when output is not one."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap `iterable` in a progress bar on stderr when stderr is a terminal."""
    yield from tqdm(iterable, total=total, desc=desc, disable=not sys.stderr.isatty(), leave=False, unit="it")


def progress_by_group(
    iterable: Iterable[H],
    *,
    total: int,
    group: int,
    desc: str,
    what: str,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[H]:
    """A progress bar on a terminal; elsewhere (a log file, a pipe, CI) one line per finished group.

    An item is drawn as a step finishes and names the group it belongs to (the position of a seed, say);
    groups that run in parallel interleave their items. A group is done when its `group`-th item is drawn, and
    a group left short is done when the iterable is exhausted. Off a terminal it prints, to `stream` (stderr
    by default), a line as it starts and one per group as it finishes: ``comparing: seed 2/5 done (143 s
    elapsed)``.
    """
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        yield from tqdm(iterable, total=total, desc=desc, leave=False, unit="it", file=stream)
        return
    groups = -(-total // group)
    started = clock()
    finished = 0

    def done() -> None:
        nonlocal finished
        finished += 1
        print(
            f"{desc}: {what} {finished}/{groups} done ({clock() - started:.0f} s elapsed)",
            file=stream,
            flush=True,
        )

    print(f"{desc}: {groups} {what}s of {group} steps each", file=stream, flush=True)
    counts: dict[H, int] = {}
    for item in iterable:
        counts[item] = counts.get(item, 0) + 1
        if counts[item] == group:
            done()
        yield item
    for count in counts.values():
        if count < group:
            done()
