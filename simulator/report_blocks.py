"""The block model of the comparison report: what the report says, before any format.

The report is a sequence of blocks (`simulator.report_questions` and `simulator.report` write it; the
renderers of `simulator.report_render` turn it into Markdown or HTML). Text in a block may carry two inline
markups only: `code` and **bold**.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Heading:
    """A heading of `level` (1: the title); `anchor` names a section of the report."""

    text: str
    level: int = 2
    anchor: str | None = None


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of text."""

    text: str


@dataclass(frozen=True)
class Bullets:
    """A bulleted list, one sentence per item."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """A table of text cells.

    Attributes
    ----------
    headers : tuple of str, shape (c,)
    rows : tuple of tuples of str, shape (r, c)
    align : str
        One of ``l`` / ``r`` per column; empty: the first column left, the others right.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str = ""

    @property
    def alignment(self) -> str:
        return self.align or "l" + "r" * (len(self.headers) - 1)


@dataclass(frozen=True)
class Figure:
    """A plot: its id, its title, and how to draw it as PNG bytes (only formats that show plots draw it)."""

    key: str
    title: str
    draw: Callable[[], bytes] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Section:
    """A titled part of the report that stays together (``<section id=anchor>`` in HTML): a level-2 heading
    and its blocks (no nested sections)."""

    anchor: str
    title: str
    blocks: tuple[Heading | Paragraph | Bullets | Table | Figure, ...]


Block = Heading | Paragraph | Bullets | Table | Figure | Section
