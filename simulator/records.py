"""Typed batches of simulated requests, as a serving system would receive them.

Everything here is observable: the section, the user, the time and device, the section's context and the
candidate set handed over by the upstream retriever. The world keeps the latent truth elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ranker.requests import Requests
from ranker.rerank.batch import RerankBatch
from simulator.errors import SimulationInputError


@dataclass(frozen=True)
class RequestBatch:
    """B requests.

    Attributes
    ----------
    section : (B,) str
        Section name.
    user_id : (B,) int64
    time : (B,) float64
        Request time, Unix seconds (whole seconds).
    device : (B,) str
        Device the request comes from.
    hour : (B,) int64
        Hour of the day (UTC) of `time`.
    segment : (B,) str
        The user's segment, as the user profile shows it.
    source_item : (B,) int64
        similar_items: the item on screen; -1 for the other sections.
    category : (B,) int64
        category_explore: the explored category; -1 for the other sections.
    query : (B,) str
        search: the query text (space-separated words); "" for the other sections.
    query_tokens : (B, Q) int64
        The query's word ids in the world's vocabulary, padded with -1 (Q >= 1).
    candidates : (B, n) int64
        Candidate item ids from the upstream retriever, distinct within a request.
    """

    section: np.ndarray
    user_id: np.ndarray
    time: np.ndarray
    device: np.ndarray
    hour: np.ndarray
    segment: np.ndarray
    source_item: np.ndarray
    category: np.ndarray
    query: np.ndarray
    query_tokens: np.ndarray
    candidates: np.ndarray

    def __post_init__(self) -> None:
        batch = len(self.section)
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, np.ndarray):
                raise SimulationInputError(f"Expected `{f.name}` to be a numpy array, found {type(value)}")
            if value.shape[:1] != (batch,):
                raise SimulationInputError(
                    f"Expected `{f.name}` with {batch} rows (as `section`), found shape {value.shape}"
                )
        if self.candidates.ndim != 2 or self.query_tokens.ndim != 2:
            raise SimulationInputError(
                "Expected `candidates` and `query_tokens` of shape (B, n), found "
                f"{self.candidates.shape} and {self.query_tokens.shape}"
            )

    def __len__(self) -> int:
        return len(self.section)

    @property
    def n_candidates(self) -> int:
        return self.candidates.shape[1]

    def take(self, rows: np.ndarray) -> RequestBatch:
        """The requests at `rows` (indices or a boolean mask), in that order."""
        return RequestBatch(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def to_rerank_batch(self) -> RerankBatch:
        """The requests as the rerank pipeline takes them, converted column by column.

        ``source_item`` and ``category`` of -1 become None (no such context), the other ids Python ints;
        ``query`` "" means no query. The feature function reads the same requests as it would from
        `context_dicts`.
        """
        requests = Requests.from_columns(
            section=self.section,
            user_id=self.user_id,
            time=self.time,
            device=self.device,
            source_item=_ids_or_none(self.source_item),
            category=_ids_or_none(self.category),
            query=self.query,
        )
        return RerankBatch(requests, self.candidates)

    def context_dicts(self) -> list[dict[str, object]]:
        """JSON-able request contexts, as the decision log stores them: device, hour, segment, and the
        section's own field when it has one."""
        devices, hours, segments = self.device.tolist(), self.hour.tolist(), self.segment.tolist()
        sources, categories, queries = self.source_item.tolist(), self.category.tolist(), self.query.tolist()
        out: list[dict[str, object]] = []
        for device, hour, segment, source, category, query in zip(
            devices, hours, segments, sources, categories, queries, strict=True
        ):
            context: dict[str, object] = {"device": device, "hour": hour, "segment": segment}
            if source >= 0:
                context["source_item"] = source
            if category >= 0:
                context["category"] = category
            if query:
                context["query"] = query
            out.append(context)
        return out


def _ids_or_none(ids: np.ndarray) -> np.ndarray:
    """(B,) int ids with -1 for none -> (B,) object array of Python ints, None for none."""
    return np.where(ids >= 0, ids.astype(object), None)
