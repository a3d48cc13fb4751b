"""Progress bars that show on a terminal, and plain progress lines (or nothing) when output is not one."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap `iterable` in a progress bar on stderr when stderr is a terminal."""
    yield from tqdm(iterable, total=total, desc=desc, disable=not sys.stderr.isatty(), leave=False, unit="it")


def progress_by_group(
    iterable: Iterable[T],
    *,
    total: int,
    group: int,
    desc: str,
    what: str,
    stream: TextIO | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Iterator[T]:
    """A progress bar on a terminal; elsewhere (a log file, a pipe, CI) one line per `group` items.

    The items come in groups of `group` (a seed's steps, say); an item is drawn as its step starts, so a
    group is done when the next group's first item is drawn, and the last one when the iterable is exhausted.
    Off a terminal it prints, to `stream` (stderr by default), a line as it starts and one per finished group:
    ``comparing: seed 2/5 done in 71 s (143 s elapsed)``.
    """
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        yield from tqdm(iterable, total=total, desc=desc, leave=False, unit="it", file=stream)
        return
    groups = -(-total // group)
    started = last = clock()

    def done(number: int) -> None:
        nonlocal last
        now = clock()
        print(
            f"{desc}: {what} {number}/{groups} done in {now - last:.0f} s ({now - started:.0f} s elapsed)",
            file=stream,
            flush=True,
        )
        last = now

    print(f"{desc}: {groups} {what}s of {group} steps each", file=stream, flush=True)
    count = 0
    for item in iterable:
        if count and count % group == 0:
            done(count // group)
        count += 1
        yield item
    if count:
        done(-(-count // group))
