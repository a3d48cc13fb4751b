"""The JSON bodies `sectionrank live` sends and reads (docs/http-api.md): a rerank per simulated request, the
variant a rerank answer names, the feedback of a slate."""

from __future__ import annotations

import numpy as np
import orjson

from simulator.records import RequestBatch


def rerank_bodies(requests: RequestBatch) -> list[bytes]:
    """The ``POST /v1/rerank`` body of each request (JSON bytes): section, user, the section's context with
    the device and the world time, the candidate ids; ``k`` is left to the section's default."""
    contexts = requests.context_dicts()
    times = requests.time.tolist()
    bodies = []
    for section, user, context, when, candidates in zip(
        requests.section.tolist(),
        requests.user_id.tolist(),
        contexts,
        times,
        requests.candidates.tolist(),
        strict=True,
    ):
        sent = {k: v for k, v in context.items() if k in ("source_item", "category", "query", "device")}
        sent["time"] = when
        body = {"section": section, "user": {"id": user}, "context": sent, "candidates": candidates}
        bodies.append(orjson.dumps(body))
    return bodies


def variant_of(answer: dict) -> str:
    """The experiment variant a rerank answer names ("" when it names none): a string, or an object's
    ``name`` (or ``id``)."""
    variant = answer.get("variant")
    if isinstance(variant, dict):
        variant = variant.get("name", variant.get("id"))
    return "" if variant is None else str(variant)


def feedback_body(
    event_id: str, clicks: np.ndarray, conversions: np.ndarray, revenue: float, when: float
) -> bytes:
    """``POST /v1/feedback`` of one slate: the clicked and converted positions (0-based)."""
    return orjson.dumps(
        {
            "event_id": event_id,
            "clicks": [{"position": p} for p in np.flatnonzero(clicks).tolist()],
            "conversions": [{"position": p} for p in np.flatnonzero(conversions).tolist()],
            "revenue": float(revenue),
            "time": when,
        }
    )
