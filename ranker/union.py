"""The stratified union of per-section training lists: one training set for the shared base ranker.

The input is one DataFrame of labelled rows with at least the columns ``section`` and ``list_id``. A *list* is
the rows that share a ``list_id`` (one request and its candidates); a list lies in one section. The union
takes whole lists from every section, in proportions given by a `UnionSpec`:

- ``traffic``: each section's share of the lists (requests) in the input;
- ``equal``: the same share for every section;
- ``business``: each section's share of revenue, from a ``revenue`` mapping passed to `stratified_union` or,
  without one, the frame's ``revenue`` column summed over the section's rows;
- explicit weights: ``"0.5,0.3,0.2"`` in the order of a given section list, or a mapping section -> weight;
  weights are >= 0 and are divided by their sum.

The total number of lists defaults to the largest n with ``share * n <= available`` for every section, so
that no section is sampled with replacement (for ``traffic`` that is every list). Lists per section are
whole numbers from the largest-remainder rule, so each section's achieved share is within 1 / total of its
target unless it runs short (see `when_short`).
docs/ranker-metrics.md gives the rules in full.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from ranker.errors import UnionError, UnionSpecError

Strategy = Literal["traffic", "equal", "business", "explicit"]
WhenShort = Literal["raise", "cap", "replace"]

STRATEGIES = ("traffic", "equal", "business")
WHEN_SHORT = ("raise", "cap", "replace")
#: Column added to the union: 0..L-1 numbering the taken lists; rows of one taken list are consecutive.
UNION_LIST = "union_list"
REQUIRED_COLUMNS = ("section", "list_id")


@dataclass(frozen=True)
class UnionSpec:
    """How to split the union between sections.

    Attributes
    ----------
    strategy : {"traffic", "equal", "business", "explicit"}
    sections : tuple of str
        The sections of the union, in order; the input frame may hold no other section.
    weights : Mapping[str, float] or None
        For ``explicit``: each section's target share (>= 0, summing to 1). None for the other strategies,
        whose shares depend on the data.
    """

    strategy: Strategy
    sections: tuple[str, ...]
    weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.strategy not in (*STRATEGIES, "explicit"):
            raise UnionSpecError(
                f"unknown strategy {self.strategy!r}; expected one of {', '.join(STRATEGIES)} or numbers"
            )
        if not self.sections:
            raise UnionSpecError("expected at least one section, found none")
        if len(set(self.sections)) != len(self.sections):
            raise UnionSpecError(f"expected distinct sections, found {list(self.sections)}")
        if (self.strategy == "explicit") != (self.weights is not None):
            raise UnionSpecError("weights are given exactly when the strategy is 'explicit'")
        if self.weights is not None:
            if set(self.weights) != set(self.sections):
                raise UnionSpecError(
                    f"expected weights for exactly the sections {list(self.sections)}, "
                    f"found {list(self.weights)}"
                )
            values = [self.weights[s] for s in self.sections]
            if any(not math.isfinite(v) or v < 0 for v in values) or not math.isclose(math.fsum(values), 1.0):
                raise UnionSpecError(f"expected finite weights >= 0 summing to 1, found {values}")


@dataclass(frozen=True)
class SectionShare:
    """What the union took from one section.

    Attributes
    ----------
    section : str
    lists_available : int
        Distinct lists of the section in the input.
    lists_taken : int
        Lists of the section in the union, counting repeats.
    distinct_taken : int
        Distinct lists among them (less than `lists_taken` only when sampled with replacement).
    target_share : float
        The share of the union's lists the spec asks for.
    achieved_share : float
        ``lists_taken`` over the union's total lists (0 for an empty union).
    short : bool
        Whether the section had fewer lists than its target number (then capped or sampled with replacement).
    """

    section: str
    lists_available: int
    lists_taken: int
    distinct_taken: int
    target_share: float
    achieved_share: float
    short: bool


@dataclass(frozen=True)
class UnionSummary:
    """Per-section accounting of a union.

    Attributes
    ----------
    strategy : str
    n_lists_target : int
        The total number of lists asked for (the default or the given `n_lists`).
    n_lists : int
        Lists in the union (less than the target when sections were capped).
    n_rows : int
    when_short : str
    seed : int or None
        The seed, or None when a Generator was passed.
    sections : tuple of SectionShare
        In the spec's section order.
    """

    strategy: str
    n_lists_target: int
    n_lists: int
    n_rows: int
    when_short: str
    seed: int | None
    sections: tuple[SectionShare, ...]

    def to_frame(self) -> pd.DataFrame:
        """The per-section rows as a DataFrame, one row per section."""
        return pd.DataFrame([vars(s) for s in self.sections], columns=list(SectionShare.__dataclass_fields__))


@dataclass(frozen=True)
class UnionResult:
    """A union and its summary.

    Attributes
    ----------
    frame : pd.DataFrame
        The taken rows with every input column plus ``union_list``; lists in the spec's section order, each
        section's lists in order of first appearance in the input, each list's rows consecutive and in input
        order. The index is a fresh RangeIndex.
    summary : UnionSummary
    """

    frame: pd.DataFrame
    summary: UnionSummary

    @property
    def group_sizes(self) -> np.ndarray:
        """(L,) int64 rows per taken list, in frame order (LightGBM's ``group``)."""
        return np.bincount(self.frame[UNION_LIST].to_numpy(), minlength=self.summary.n_lists).astype(np.int64)


# ------------------------------------------------------------------------------------------------ parsing


def _py(value: object) -> object:
    """A numpy scalar as the Python value, so that messages show ``7`` rather than ``np.int64(7)``."""
    return value.item() if isinstance(value, np.generic) else value


def _weights_from_numbers(numbers: Sequence[float], sections: Sequence[str], source: str) -> dict[str, float]:
    if len(numbers) != len(sections):
        raise UnionSpecError(
            f"{source}: expected {len(sections)} numbers (one per section: {', '.join(sections)}), "
            f"found {len(numbers)}"
        )
    for section, value in zip(sections, numbers, strict=True):
        if not math.isfinite(value):
            raise UnionSpecError(
                f"{source}: expected a finite weight for section {section!r}, found {_py(value)!r}"
            )
        if value < 0:
            raise UnionSpecError(
                f"{source}: expected a weight >= 0 for section {section!r}, found {_py(value)!r}"
            )
    total = math.fsum(numbers)
    if total <= 0:
        raise UnionSpecError(f"{source}: expected at least one weight > 0, found all zero")
    return {section: value / total for section, value in zip(sections, numbers, strict=True)}


def parse_union_spec(spec: str | Mapping[str, float], sections: Sequence[str]) -> UnionSpec:
    """A `UnionSpec` from a strategy name, comma-separated weights or a mapping.

    Parameters
    ----------
    spec : str or Mapping[str, float]
        ``"traffic"``, ``"equal"``, ``"business"`` (case-insensitive, surrounding spaces ignored); numbers
        ``"0.5,0.3,0.2"``, one per section in the order of `sections`; or a mapping with exactly the keys of
        `sections`. Weights must be finite and >= 0 with at least one > 0; they are divided by their sum.
    sections : sequence of str
        The sections of the union, distinct, in order.

    Returns
    -------
    UnionSpec

    Raises
    ------
    UnionSpecError
        Unknown strategy, a number that does not parse, a negative or non-finite weight, the wrong count of
        numbers, missing or unknown mapping keys, all weights zero, or no / repeated sections.
    """
    if isinstance(sections, str):
        raise UnionSpecError(f"expected `sections` to be a sequence of names, found the string {sections!r}")
    names = tuple(str(s) for s in sections)
    if not names:
        raise UnionSpecError("expected at least one section in `sections`, found none")
    if len(set(names)) != len(names):
        raise UnionSpecError(f"expected distinct `sections`, found {list(names)}")
    if isinstance(spec, Mapping):
        keys = {str(k) for k in spec}
        unknown = sorted(keys - set(names))
        if unknown:
            raise UnionSpecError(f"spec: unknown sections {unknown}; expected keys from {list(names)}")
        missing = [s for s in names if s not in keys]
        if missing:
            raise UnionSpecError(f"spec: missing weights for sections {missing}")
        values = {str(k): v for k, v in spec.items()}
        numbers = []
        for s in names:
            value = values[s]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UnionSpecError(f"spec: expected a number for section {s!r}, found {_py(value)!r}")
            numbers.append(float(value))
        weights = _weights_from_numbers(numbers, names, "spec")
        return UnionSpec("explicit", names, MappingProxyType(weights))
    if not isinstance(spec, str):
        raise UnionSpecError(f"expected a strategy name, numbers or a mapping, found {spec!r}")
    text = spec.strip()
    if text.lower() in STRATEGIES:
        return UnionSpec(text.lower(), names)  # type: ignore[arg-type]
    parts = [p.strip() for p in text.split(",")]
    numbers = []
    for position, part in enumerate(parts):
        try:
            numbers.append(float(part))
        except ValueError:
            if len(parts) == 1:
                raise UnionSpecError(
                    f"unknown strategy {spec!r}; expected one of {', '.join(STRATEGIES)} or numbers "
                    "'a,b,c' (one per section)"
                ) from None
            raise UnionSpecError(
                f"spec {spec!r}: expected a number at position {position}, found {part!r}"
            ) from None
    weights = _weights_from_numbers(numbers, names, f"spec {spec!r}")
    return UnionSpec("explicit", names, MappingProxyType(weights))


# ---------------------------------------------------------------------------------------------- the union


def _check_frame(frame: pd.DataFrame) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise UnionError(f"expected `frame` to be a pandas DataFrame, found {type(frame).__name__}")
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise UnionError(f"frame: missing column {column!r}; found columns {list(frame.columns)}")
    if len(frame) == 0:
        raise UnionError("frame: expected labelled rows, found an empty frame")
    if UNION_LIST in frame.columns:
        raise UnionError(f"frame: column {UNION_LIST!r} is reserved for the union's list numbers")
    for column in REQUIRED_COLUMNS:
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise UnionError(
                f"frame: column {column!r} has a missing value at row {int(np.flatnonzero(missing)[0])}"
            )


def _target_shares(
    spec: UnionSpec, available: np.ndarray, frame: pd.DataFrame, revenue: Mapping[str, float] | None
) -> np.ndarray:
    """(S,) each section's target share of the union's lists, in the spec's order (sums to 1).

    `available` (S,) holds the lists of each section. For ``business``, `revenue` maps every spec section to
    a finite revenue >= 0, not all zero; without it the frame's ``revenue`` column is summed per section
    (a section without rows has revenue 0).
    """
    sections = spec.sections
    if spec.strategy == "explicit":
        assert spec.weights is not None
        return np.array([spec.weights[s] for s in sections], dtype=np.float64)
    if spec.strategy == "equal":
        return np.full(len(sections), 1.0 / len(sections))
    if spec.strategy == "traffic":
        return available / available.sum()
    if revenue is not None:
        if not isinstance(revenue, Mapping):
            raise UnionError(
                f"business: expected `revenue` to be a mapping section -> revenue, found {revenue!r}"
            )
        values = {str(k): v for k, v in revenue.items()}
        unknown = sorted(set(values) - set(sections))
        if unknown:
            raise UnionError(
                f"business: `revenue` has unknown sections {unknown}; expected keys from {list(sections)}"
            )
        missing = [s for s in sections if s not in values]
        if missing:
            raise UnionError(f"business: `revenue` is missing sections {missing}")
        numbers = []
        for s in sections:
            value = values[s]
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise UnionError(
                    f"business: expected a number in `revenue` for section {s!r}, found {_py(value)!r}"
                )
            numbers.append(float(value))
    else:
        if "revenue" not in frame.columns:
            raise UnionError("business: needs a `revenue` mapping or a 'revenue' column in the frame")
        column = pd.to_numeric(frame["revenue"], errors="coerce")
        bad = column.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise UnionError(
                f"business: column 'revenue' needs numbers, found {_py(frame['revenue'].iloc[row])!r} "
                f"at row {row}"
            )
        sums = column.groupby(frame["section"].astype(str), sort=False).sum()
        numbers = [float(sums.get(s, 0.0)) for s in sections]
    try:
        weights = _weights_from_numbers(numbers, sections, "business: revenue")
    except UnionSpecError as exc:
        raise UnionError(str(exc)) from None
    return np.array([weights[s] for s in sections], dtype=np.float64)


def allocate(shares: Sequence[float], total: int) -> np.ndarray:
    """Whole numbers of lists (S,) summing to `total`, by the largest-remainder rule.

    Each section gets ``floor(share * total)``; the lists left over go one each to the sections with the
    largest fractional parts, ties to the earlier section. Each count is within 1 of ``share * total``.
    """
    exact = np.asarray(shares, dtype=np.float64) * total
    counts = np.floor(exact + 1e-9).astype(np.int64)
    left = total - int(counts.sum())
    if left > 0:
        remainder = exact - counts
        order = np.lexsort((np.arange(exact.size), -remainder))
        counts[order[:left]] += 1
    return counts


def _default_total(shares: np.ndarray, available: np.ndarray) -> int:
    """The largest n with ``share * n <= available`` for every section with a positive share.

    Its allocation then takes no section beyond its lists (each count is at most ``ceil(share * n)``); the
    loop only guards against rounding in the division.
    """
    positive = shares > 0
    total = int(np.floor(np.min(available[positive] / shares[positive]) + 1e-9))
    while total > 0 and np.any(allocate(shares, total) > available):
        total -= 1
    return total


def stratified_union(
    frame: pd.DataFrame,
    spec: UnionSpec | str | Mapping[str, float],
    *,
    sections: Sequence[str] | None = None,
    n_lists: int | None = None,
    when_short: WhenShort = "raise",
    revenue: Mapping[str, float] | None = None,
    seed: int | np.random.Generator = 0,
) -> UnionResult:
    """Take whole lists from every section in the proportions of `spec`.

    Parameters
    ----------
    frame : pd.DataFrame
        Labelled rows with at least ``section`` and ``list_id``; every list (rows sharing a ``list_id``) must
        lie in one section, and every section must be one of the spec's.
    spec : UnionSpec, str or Mapping[str, float]
        A parsed spec, or anything `parse_union_spec` reads. Comma-separated numbers need `sections` for
        their order.
    sections : sequence of str, optional
        The union's sections in order, when `spec` is not a UnionSpec; default: the frame's sections in
        order of first appearance.
    n_lists : int, optional
        Total lists in the union, >= 1. Default: the largest n with ``share * n <= available`` for every
        section, so that none is sampled with replacement (every list, for ``traffic``).
    when_short : {"raise", "cap", "replace"}, default "raise"
        What to do when a section has fewer lists than its target count (only possible with an explicit
        `n_lists`): raise `UnionError`; ``cap``: take all its lists and leave the union that much smaller;
        ``replace``: take every list ``target // available`` times and ``target % available`` further
        lists, chosen at random without replacement, once more.
    revenue : Mapping[str, float], optional
        Revenue per section for the ``business`` strategy: every spec section, finite, >= 0, not all zero.
        Without it, ``business`` sums the frame's ``revenue`` column over each section's rows.
    seed : int or np.random.Generator, default 0
        Lists are drawn section by section, in the spec's order, from one generator; the same seed gives the
        same union.

    Returns
    -------
    UnionResult
        The union frame (input columns plus ``union_list``) and a `UnionSummary`.

    Raises
    ------
    UnionError
        Missing columns or values, a list in two sections, a section outside the spec, a section with a
        positive target but no lists, a short section with ``when_short="raise"``, invalid options.
    """
    _check_frame(frame)
    if when_short not in WHEN_SHORT:
        raise UnionError(f"expected `when_short` in {', '.join(WHEN_SHORT)}, found {when_short!r}")
    if n_lists is not None and (
        isinstance(n_lists, bool) or not isinstance(n_lists, int | np.integer) or n_lists < 1
    ):
        raise UnionError(f"expected `n_lists` to be an integer >= 1, found {_py(n_lists)!r}")
    if isinstance(seed, np.random.Generator):
        rng, seed_value = seed, None
    elif isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UnionError(f"expected `seed` to be an integer >= 0 or a Generator, found {_py(seed)!r}")
    else:
        rng, seed_value = np.random.default_rng(int(seed)), int(seed)

    section_of_row = frame["section"].astype(str).to_numpy()
    if not isinstance(spec, UnionSpec):
        if sections is None:
            if isinstance(spec, str) and "," in spec:
                raise UnionSpecError(f"spec {spec!r}: numbers need `sections` to give their order")
            sections = list(pd.unique(section_of_row))
        spec = parse_union_spec(spec, sections)
    elif sections is not None and tuple(map(str, sections)) != spec.sections:
        raise UnionError(f"`sections` {list(sections)} differ from the spec's sections {list(spec.sections)}")

    # Lists: codes in order of first appearance; the section of a list is that of its first row.
    list_code, list_ids = pd.factorize(frame["list_id"], sort=False)
    n_all = list_ids.size
    sec_index = {s: i for i, s in enumerate(spec.sections)}
    sec_code_row = pd.Series(section_of_row).map(sec_index)
    outside = sec_code_row.isna().to_numpy()
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise UnionError(
            f"frame: section {_py(section_of_row[row])!r} at row {row} is not one of the spec's sections "
            f"{list(spec.sections)}"
        )
    sec_code_row = sec_code_row.to_numpy(np.int64)
    row_order = np.argsort(list_code, kind="stable")
    rows_per_list = np.bincount(list_code, minlength=n_all).astype(np.int64)
    list_start = np.concatenate(([0], np.cumsum(rows_per_list)[:-1]))
    list_section = sec_code_row[row_order[list_start]]
    mixed = sec_code_row != list_section[list_code]
    if mixed.any():
        row = int(np.flatnonzero(mixed)[0])
        raise UnionError(
            f"frame: list_id {_py(list_ids[list_code[row]])!r} lies in two sections, "
            f"{spec.sections[list_section[list_code[row]]]!r} and {_py(section_of_row[row])!r} (row {row})"
        )

    n_sections = len(spec.sections)
    available = np.bincount(list_section, minlength=n_sections).astype(np.int64)
    shares = _target_shares(spec, available, frame, revenue)
    empty = (shares > 0) & (available == 0)
    if empty.any():
        s = int(np.flatnonzero(empty)[0])
        raise UnionError(
            f"section {spec.sections[s]!r} has target share {shares[s]:.4g} but no lists in the frame"
        )

    total = _default_total(shares, available) if n_lists is None else int(n_lists)
    targets = allocate(shares, total)
    short = targets > available
    if short.any() and when_short == "raise":
        s = int(np.flatnonzero(short)[0])
        raise UnionError(
            f"section {spec.sections[s]!r} has {available[s]} lists but its share of n_lists={total} is "
            f"{targets[s]}; pass when_short='cap' or 'replace', or a smaller n_lists"
        )

    # Lists of each section, in order of first appearance.
    by_section = np.argsort(list_section, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(available)))
    taken_parts = []
    taken = np.zeros(n_sections, dtype=np.int64)
    distinct = np.zeros(n_sections, dtype=np.int64)
    for s in range(n_sections):
        pool = by_section[bounds[s] : bounds[s + 1]]
        want = int(targets[s])
        if want <= pool.size:
            picked = np.sort(rng.choice(pool.size, size=want, replace=False))
            chosen = pool[picked]
        elif when_short == "cap":
            chosen = pool
        else:
            repeats, extra = divmod(want, pool.size)
            counts = np.full(pool.size, repeats, dtype=np.int64)
            counts[rng.choice(pool.size, size=extra, replace=False)] += 1
            chosen = np.repeat(pool, counts)
        taken[s] = chosen.size
        distinct[s] = np.unique(chosen).size
        taken_parts.append(chosen)
    chosen_lists = np.concatenate(taken_parts) if taken_parts else np.empty(0, dtype=np.int64)

    # Rows of every chosen list, consecutive, in input order within the list.
    sizes = rows_per_list[chosen_lists]
    out_start = np.concatenate(([0], np.cumsum(sizes)[:-1])) if sizes.size else sizes
    n_rows = int(sizes.sum())
    within = np.arange(n_rows, dtype=np.int64) - np.repeat(out_start, sizes)
    rows = row_order[np.repeat(list_start[chosen_lists], sizes) + within]
    union = frame.iloc[rows].reset_index(drop=True)
    union[UNION_LIST] = np.repeat(np.arange(chosen_lists.size, dtype=np.int64), sizes)

    n_taken = int(chosen_lists.size)
    summary = UnionSummary(
        strategy=spec.strategy,
        n_lists_target=total,
        n_lists=n_taken,
        n_rows=n_rows,
        when_short=when_short,
        seed=seed_value,
        sections=tuple(
            SectionShare(
                section=name,
                lists_available=int(available[s]),
                lists_taken=int(taken[s]),
                distinct_taken=int(distinct[s]),
                target_share=float(shares[s]),
                achieved_share=float(taken[s] / n_taken) if n_taken else 0.0,
                short=bool(short[s]),
            )
            for s, name in enumerate(spec.sections)
        ),
    )
    return UnionResult(frame=union, summary=summary)
