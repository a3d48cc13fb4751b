"""What the rerank pipeline takes: a typed batch of requests with their candidates, and where it reads the
candidates' and users' attributes from.

`RerankBatch` is the one request type of the pipeline's batch entry points (`RerankPipeline.score`,
`rerank_batch`, `rerank_arms`): the feature function's `ranker.requests.Requests` (B,) and the candidates
(B, n). A served request becomes a batch of one (`RerankBatch.from_contexts`); the simulator converts its own
request batches column by column (`simulator.records.RequestBatch.to_rerank_batch`).

`AttributeSource` is what the pipeline reads besides the requests: the heuristics' item and context batches
and the users' segments. The service's `ItemAttributes` (from the catalog and user tables) is one; the
simulator's `World` (its observable arrays) is another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from heuristics import ContextBatch, ItemBatch
from ranker.errors import RequestError
from ranker.requests import Requests


class AttributeSource(Protocol):
    """The catalog and user attributes the heuristics and the knob policy read."""

    def item_batch(self, candidates: np.ndarray, times: np.ndarray) -> ItemBatch:
        """Heuristic attributes of candidates (B, n) at request times (B,)."""
        ...

    def request_context(self, requests: Requests) -> ContextBatch:
        """Heuristic context (source item embedding, explored category) of B requests."""
        ...

    def segment(self, user_ids: np.ndarray) -> np.ndarray:
        """(B,) the users' segments."""
        ...


@dataclass(frozen=True)
class RerankBatch:
    """B requests with n candidates each.

    Attributes
    ----------
    requests : Requests
        The B requests (section, user, time, device and the section's context), as the feature function
        reads them.
    candidates : (B, n) array of item ids
    """

    requests: Requests
    candidates: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.requests, Requests):
            raise RequestError(f"Expected `requests` to be Requests, found {type(self.requests).__name__}")
        candidates = np.asarray(self.candidates)
        if candidates.ndim != 2 or candidates.shape[0] != len(self.requests):
            raise RequestError(
                f"Expected `candidates` of shape ({len(self.requests)}, n), one row per request, "
                f"found {candidates.shape}"
            )
        object.__setattr__(self, "candidates", candidates)

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def n_candidates(self) -> int:
        return self.candidates.shape[1]

    def take(self, rows: np.ndarray) -> RerankBatch:
        """The requests at `rows` (indices or a boolean mask), in that order."""
        return RerankBatch(self.requests.take(rows), self.candidates[rows])

    def by_section(self) -> list[tuple[str, np.ndarray]]:
        """(section, rows) of each section in the batch, sections sorted by name, rows in batch order."""
        sections = self.requests.section
        if len(sections) and (sections == sections[0]).all():
            return [(str(sections[0]), np.arange(len(sections)))]
        names, inverse = np.unique(sections.astype(str), return_inverse=True)
        return [(str(name), np.flatnonzero(inverse == i)) for i, name in enumerate(names.tolist())]

    @classmethod
    def from_contexts(
        cls,
        sections: Sequence[str] | np.ndarray,
        user_ids: Sequence[object] | np.ndarray,
        times: Sequence[float] | np.ndarray,
        contexts: Sequence[Mapping[str, object] | None],
        candidates: np.ndarray,
    ) -> RerankBatch:
        """A batch from per-request context dicts (see `ranker.requests`), e.g. one served request.

        Raises
        ------
        RequestError
            A context field of the wrong type, or candidates of another shape than (B, n).
        """
        return cls(Requests.from_contexts(sections, user_ids, times, contexts), np.asarray(candidates))
