"""Typed inputs and outputs of the re-rankers, and their abstract bases.

Every re-ranker works on a *batch* of requests that share a candidate-list length: scores of shape (B, n).
A single request is a batch of one (see `ItemBatch.single` and `SectionPipeline.rerank`). Knob values are
scalars or arrays of shape (B,), so that each request of a batch can run under its own arm.

Score heuristics (boosts, freshness) return new scores; order heuristics (MMR, category cap) turn an order
into another order. Both are deterministic: ties keep the input order.
"""

from __future__ import annotations

import keyword
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np

from heuristics.errors import InputError, MissingContextError


@dataclass(frozen=True)
class KnobSpec:
    """The allowed range of one numeric knob: ``low <= value <= high`` (``low`` excluded if ``open_low``)."""

    default: float
    low: float
    high: float
    open_low: bool = False
    integer: bool = False

    def problem(self, value: object) -> str | None:
        """Why `value` is not allowed, or None when it is."""
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            return f"expected a number, found {value!r}"
        try:
            number = float(value)
        except OverflowError:
            number = float("inf")
        if not math.isfinite(number):
            return f"expected a finite number, found {value!r}"
        low_ok = number > self.low if self.open_low else number >= self.low
        if not low_ok or number > self.high:
            bracket = "(" if self.open_low else "["
            return f"expected a value in {bracket}{self.low:g}, {self.high:g}], found {value!r}"
        if self.integer and not number.is_integer():
            return f"expected an integer, found {value!r}"
        return None

    def bad(self, values: np.ndarray) -> np.ndarray:
        """A mask of the entries of a float array that `problem` refuses (vectorised)."""
        with np.errstate(invalid="ignore"):
            low_bad = values <= self.low if self.open_low else values < self.low
            out = ~np.isfinite(values) | low_bad | (values > self.high)
            if self.integer:
                out |= values != np.round(values)
        return out


@dataclass(frozen=True)
class ParamSpec:
    """A fixed, per-section parameter of a heuristic, chosen from a set of names."""

    default: str
    choices: tuple[str, ...]

    def problem(self, value: object) -> str | None:
        if value not in self.choices:
            return f"expected one of {', '.join(self.choices)}, found {value!r}"
        return None


@dataclass(frozen=True)
class ItemBatch:
    """Attributes of the candidates of B requests, n candidates each.

    Attributes
    ----------
    category : (B, n) int64
        Category id of each candidate.
    age_days : (B, n) float64
        Age of each candidate at request time, in days (negative ages are treated as 0).
    promoted : (B, n) bool
        Whether the business promotes the candidate.
    embedding : (B, n, d) float, optional
        Item embedding; cosine similarity is computed from it.
    subcategory : (B, n) int64, optional
        Subcategory id, for diversity within one category.
    """

    category: np.ndarray
    age_days: np.ndarray
    promoted: np.ndarray
    embedding: np.ndarray | None = None
    subcategory: np.ndarray | None = None

    def __post_init__(self) -> None:
        # Array-likes (lists) become arrays, so that every field has the attributes of one.
        for name in ("category", "age_days", "promoted", "embedding", "subcategory"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, np.ndarray):
                object.__setattr__(self, name, np.asarray(value))
        shape = np.shape(self.category)
        if len(shape) != 2:
            raise InputError(f"Expected `category` of shape (B, n), found shape {shape}")
        for name in ("age_days", "promoted", "subcategory"):
            if name == "subcategory" and self.subcategory is None:
                continue
            if np.shape(getattr(self, name)) != shape:
                raise InputError(f"Expected `{name}` of shape {shape}, found {np.shape(getattr(self, name))}")
        if self.embedding is not None and (self.embedding.ndim != 3 or self.embedding.shape[:2] != shape):
            raise InputError(f"Expected `embedding` of shape {(*shape, 'd')}, found {self.embedding.shape}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.category.shape  # type: ignore[return-value]

    @classmethod
    def single(
        cls,
        category: np.ndarray,
        age_days: np.ndarray,
        promoted: np.ndarray,
        embedding: np.ndarray | None = None,
        subcategory: np.ndarray | None = None,
    ) -> ItemBatch:
        """The attributes of one request's n candidates, as a batch of one."""
        return cls(
            category=np.asarray(category, dtype=np.int64)[None, :],
            age_days=np.asarray(age_days, dtype=np.float64)[None, :],
            promoted=np.asarray(promoted, dtype=bool)[None, :],
            embedding=None if embedding is None else np.asarray(embedding)[None, :, :],
            subcategory=None if subcategory is None else np.asarray(subcategory, dtype=np.int64)[None, :],
        )

    def take(self, rows: np.ndarray) -> ItemBatch:
        """The attributes of the requests at `rows` (indices or a boolean mask)."""
        return ItemBatch(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[rows]
                for f in fields(self)
            }
        )

    def grouping(self, field: str, heuristic: str) -> np.ndarray:
        """The (B, n) group ids of `field` ("category" or "subcategory"), for diversity steps."""
        values = getattr(self, field)
        if values is None:
            raise MissingContextError(heuristic, f"item {field}")
        return values


@dataclass(frozen=True)
class ContextBatch:
    """Request context of B requests: what the section-specific boosts read.

    Attributes
    ----------
    source_embedding : (B, d) float, optional
        Embedding of the source item (similar_items).
    category : (B,) int64, optional
        The category being explored (category_explore); -1 means none for that request.
    """

    source_embedding: np.ndarray | None = None
    category: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> ContextBatch:
        """The context of the requests at `rows` (indices or a boolean mask)."""
        return ContextBatch(
            source_embedding=None if self.source_embedding is None else self.source_embedding[rows],
            category=None if self.category is None else self.category[rows],
        )

    @classmethod
    def single(cls, source_embedding: np.ndarray | None = None, category: int | None = None) -> ContextBatch:
        return cls(
            source_embedding=None
            if source_embedding is None
            else np.asarray(source_embedding, dtype=np.float64)[None, :],
            category=None if category is None else np.asarray([category], dtype=np.int64),
        )


@dataclass(frozen=True)
class Ranking:
    """The result of re-ranking B requests.

    Attributes
    ----------
    order : (B, k) int64
        Indices into each request's candidate list, best first.
    scores : (B, k) float64
        The final (adjusted) score of each ranked candidate.
    """

    order: np.ndarray
    scores: np.ndarray


def check_k(k: int | None) -> None:
    """Refuse a top-k size that is not None or a non-negative integer."""
    if k is None:
        return
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise InputError(f"Expected `k` to be None or an integer >= 0, found {k!r}")


def check_scores(scores: np.ndarray, items: ItemBatch) -> np.ndarray:
    """`scores` as a finite float64 array of the item batch's shape (B, n)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != items.shape:
        raise InputError(f"Expected `scores` of the item batch's shape {items.shape}, found {scores.shape}")
    if not np.isfinite(scores).all():
        raise InputError("Expected finite `scores`, found NaN or infinity")
    return scores


def descending_order(scores: np.ndarray) -> np.ndarray:
    """Row-wise indices that sort `scores` (B, n) best first; ties keep the lower index first."""
    return np.argsort(-scores, axis=1, kind="stable")


def as_knob(value: float | np.ndarray, batch: int) -> np.ndarray:
    """A knob value as a (B, 1) float column that broadcasts over candidates."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        return np.full((batch, 1), float(arr))
    if arr.shape != (batch,):
        raise InputError(f"Expected a knob value of shape ({batch},) or a scalar, found {arr.shape}")
    return arr[:, None]


def field_name(knob: str) -> str:
    """The dataclass field that holds a knob: ``lambda`` is stored as ``lambda_``."""
    return knob + "_" if keyword.iskeyword(knob) else knob


def check_knobs(heuristic: Heuristic) -> None:
    """Validate a heuristic's knob values (scalars or arrays) against its KNOBS specs."""
    for name, spec in heuristic.KNOBS.items():
        value = getattr(heuristic, field_name(name))
        if isinstance(value, np.ndarray):
            if value.ndim > 1:
                raise InputError(
                    f"{heuristic.NAME}.{name}: expected a scalar or an array of shape (B,), "
                    f"found shape {value.shape}"
                )
            if value.dtype.kind not in "iuf":
                raise InputError(f"{heuristic.NAME}.{name}: expected numbers, found dtype {value.dtype}")
            flat = value.reshape(-1)
            bad = np.flatnonzero(spec.bad(flat.astype(np.float64, copy=False)))
            problem = None if bad.size == 0 else spec.problem(flat[bad[0]].item())
        else:
            problem = spec.problem(value)
        if problem is not None:
            raise InputError(f"{heuristic.NAME}.{name}: {problem}")
    for name, spec in heuristic.PARAMS.items():
        problem = spec.problem(getattr(heuristic, name))
        if problem is not None:
            raise InputError(f"{heuristic.NAME}.{name}: {problem}")


class Heuristic(ABC):
    """A re-ranking step. Subclasses are frozen dataclasses whose fields are their knobs and params."""

    NAME: ClassVar[str]
    KIND: ClassVar[str]
    KNOBS: ClassVar[dict[str, KnobSpec]]
    PARAMS: ClassVar[dict[str, ParamSpec]] = {}
    #: Knob values under which the heuristic leaves the input order unchanged.
    IDENTITY: ClassVar[dict[str, float]]

    def __post_init__(self) -> None:
        check_knobs(self)

    @abstractmethod
    def rerank(
        self, scores: np.ndarray, items: ItemBatch, context: ContextBatch, k: int | None = None
    ) -> Ranking:
        """Re-rank B requests from their base scores (B, n); returns the top k of each."""


class ScoreHeuristic(Heuristic):
    """A heuristic that adjusts scores: boosts and freshness."""

    KIND: ClassVar[str] = "score"

    @abstractmethod
    def adjust(self, scores: np.ndarray, items: ItemBatch, context: ContextBatch) -> np.ndarray:
        """New scores (B, n) from scores (B, n)."""

    def rerank(
        self, scores: np.ndarray, items: ItemBatch, context: ContextBatch, k: int | None = None
    ) -> Ranking:
        check_k(k)
        adjusted = self.adjust(check_scores(scores, items), items, context)
        order = descending_order(adjusted)[:, :k]
        return Ranking(order=order, scores=np.take_along_axis(adjusted, order, axis=1))


class OrderHeuristic(Heuristic):
    """A heuristic that reorders: diversity by MMR, category caps."""

    KIND: ClassVar[str] = "order"
    #: Whether the step ranks by relevance scores itself (then it must be the first order step).
    USES_SCORES: ClassVar[bool] = False

    @abstractmethod
    def reorder(
        self,
        order: np.ndarray,
        scores: np.ndarray,
        items: ItemBatch,
        context: ContextBatch,
        k: int,
    ) -> np.ndarray:
        """A new order (B, n) from an order (B, n); only the first k positions are decided."""

    def rerank(
        self, scores: np.ndarray, items: ItemBatch, context: ContextBatch, k: int | None = None
    ) -> Ranking:
        check_k(k)
        scores = check_scores(scores, items)
        n = scores.shape[1]
        k_eff = n if k is None else min(k, n)
        order = self.reorder(descending_order(scores), scores, items, context, k_eff)[:, :k_eff]
        return Ranking(order=order, scores=np.take_along_axis(scores, order, axis=1))
