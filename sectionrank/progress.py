"""Progress bars that show on a terminal and stay quiet when output is not one."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "") -> Iterator[T]:
    """Wrap `iterable` in a progress bar on stderr when stderr is a terminal."""
    yield from tqdm(iterable, total=total, desc=desc, disable=not sys.stderr.isatty(), leave=False, unit="it")
