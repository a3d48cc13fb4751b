"""Inputs shared by several service test modules: invalid rerank bodies, which the Flask view
(test_app_errors.py) and the fast path in front of it (test_fast_path.py) must refuse the same way, and a
sections config whose one section no design is mapped to."""

from __future__ import annotations

VALID = {
    "section": "discover",
    "user": {"id": 1},
    "context": {"device": "mobile", "time": 1_710_000_000.0},
    "candidates": [1, 2, 3, 4],
    "k": 2,
}


def with_(**changes):
    body = {**VALID, **changes}
    return {k: v for k, v in body.items() if v is not DROP}


DROP = object()

# Each row: a rerank body, the status and the field the error must name.
RERANK_CASES = [
    (with_(section=DROP), 422, "section"),
    (with_(section=3), 422, "section"),
    (with_(section=""), 422, "section"),
    (with_(section="x" * 65), 422, "section"),
    (with_(section="nope"), 422, "section"),
    (with_(section=["discover"]), 422, "section"),
    (with_(user=DROP), 422, "user"),
    (with_(user=7), 422, "user"),
    (with_(user={}), 422, "user.id"),
    (with_(user={"id": None}), 422, "user.id"),
    (with_(user={"id": True}), 422, "user.id"),
    (with_(user={"id": 1.5}), 422, "user.id"),
    (with_(user={"id": [1]}), 422, "user.id"),
    (with_(user={"id": {"a": 1}}), 422, "user.id"),
    (with_(user={"id": ""}), 422, "user.id"),
    (with_(user={"id": "u" * 129}), 422, "user.id"),
    (with_(user={"id": 2**64}), 422, "user.id"),
    (with_(user={"id": 1, "features": [1]}), 422, "user.features"),
    (with_(user={"id": 1, "age": 3}), 422, "user.age"),
    (with_(context=[1]), 422, "context"),
    (with_(context="mobile"), 422, "context"),
    (with_(context={"weather": "rain"}), 422, "context.weather"),
    (with_(context={"time": "now"}), 422, "context.time"),
    (with_(context={"time": -1}), 422, "context.time"),
    (with_(context={"time": 1e300}), 422, "context.time"),
    (with_(context={"device": 5}), 422, "context.device"),
    (with_(context={"device": {"os": "x"}}), 422, "context.device"),
    (with_(context={"query": "q" * 2000}), 422, "context.query"),
    (with_(context={"source_item": [1, 2]}), 422, "context.source_item"),
    (with_(candidates=DROP), 422, "candidates"),
    (with_(candidates=[]), 422, "candidates"),
    (with_(candidates="1,2,3"), 422, "candidates"),
    (with_(candidates={"1": 2}), 422, "candidates"),
    (with_(candidates=[1, 2, 2]), 422, "candidates[2]"),
    (with_(candidates=["a", "b", "a"]), 422, "candidates[2]"),
    (with_(candidates=[1, "b"]), 422, "candidates[1]"),
    (with_(candidates=[1, True]), 422, "candidates[1]"),
    (with_(candidates=[True, 1]), 422, "candidates[0]"),
    (with_(candidates=[1, 2.5]), 422, "candidates[1]"),
    (with_(candidates=[1, None]), 422, "candidates[1]"),
    (with_(candidates=[[1], [2]]), 422, "candidates[0]"),
    (with_(candidates=[1, 2**70]), 422, "candidates[1]"),
    (with_(candidates=["a", ""]), 422, "candidates[1]"),
    (with_(candidates=["a", "b" * 200]), 422, "candidates[1]"),
    (with_(candidates=[{"id": 1}, {"name": "x"}]), 422, "candidates[1].id"),
    (with_(candidates=[{"id": 1}, {"id": 1}]), 422, "candidates[1].id"),
    (with_(candidates=[{"id": {"id": 1}}]), 422, "candidates[0].id"),
    (with_(candidates=[{"id": 1}, 2]), 422, "candidates[0]"),
    (with_(k=0), 422, "k"),
    (with_(k=-3), 422, "k"),
    (with_(k=10**9), 422, "k"),
    (with_(k=10**30), 422, "k"),
    (with_(k=True), 422, "k"),
    (with_(k=2.0), 422, "k"),
    (with_(k="2"), 422, "k"),
    (with_(request_id=5), 422, "request_id"),
    (with_(request_id="r" * 500), 422, "request_id"),
    (with_(extra={"nested": [{"garbage": None}]}), 422, "extra"),
    ([VALID], 422, "body"),
    ("discover", 422, "body"),
    (42, 422, "body"),
    (None, 422, "body"),
]


#: A sections config with one section, "feed", that no design of the default `section_models` serves.
FEED_SECTIONS = """
schema_version = 1

[sections.feed]
description = "A feed no design is mapped to."
pipeline = ["freshness"]
knobs.freshness = { weight = [0.0, 0.4] }
"""
