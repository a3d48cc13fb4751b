"""What one worker holds: the loaded pipeline, the decision writer, the store; loading and hot reload.

A worker builds its state after the fork (gunicorn runs without ``--preload``: LightGBM and VW must not
cross a fork) with `service.loading.build_pipeline`. A reload builds the candidate in a separate process
first (`service.reload_check`), then in the worker, and only then does `ServiceState.reload` swap the new
pipeline in. A failure at any step leaves the serving pipeline untouched and raises `LoadError` naming the
config key at fault.
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import math
import os
import pickle
import queue
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bandits.log_codec import decode_id_lists
from bandits.records import DecisionBatch, FeedbackBatch
from bandits.shipped import VERSIONS, current_version
from ranker.rerank.pipeline import RerankRequest, RerankResult
from service.config import ServiceConfig
from service.errors import ApiError, LoadError, ServiceError
from service.follow import (
    PolicyFollower,
    followed_directory,
    load_policy,
    read_views,
    workers_dir,
    write_view,
)
from service.loading import Loaded, build_pipeline, check_section_names
from service.log_writer import LogWriter
from service.metrics import Metrics
from service.reload_check import validate as validate_in_child
from service.spill import SpillTail
from service.validation import cache_key, parse_feedback, parse_rerank

LOGGER = logging.getLogger(__name__)


class RecentDecisions:
    """What feedback needs to know of decisions and earlier feedback, by event id: this worker's recent ones
    from memory (bounded), older ones and other workers' from the decision log (read-only; WAL readers never
    wait for a writer), and, while the log cannot take them, any worker's from the spill journals in
    `spill_dir` (read as they grow, `service.spill.SpillTail`)."""

    def __init__(self, log_path: Path, capacity: int = 100_000, spill_dir: Path | None = None) -> None:
        self.log_path = Path(log_path)
        self.capacity = capacity
        self._recent: OrderedDict[str, tuple[float, np.ndarray]] = OrderedDict()
        self._feedback: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._spilled = SpillTail(spill_dir) if spill_dir is not None else None

    def add(self, event_id: str, when: float, shown: np.ndarray) -> None:
        with self._lock:
            self._recent[event_id] = (when, np.asarray(shown))
            if len(self._recent) > self.capacity:
                self._recent.popitem(last=False)

    def add_feedback(self, event_id: str, stored: dict[str, Any]) -> None:
        with self._lock:
            self._feedback[event_id] = stored
            if len(self._feedback) > self.capacity:
                self._feedback.popitem(last=False)

    def _read(self, sql: str, event_id: str) -> tuple | None:
        try:
            if self._conn is None:
                uri = self.log_path.absolute().as_uri() + "?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, timeout=1.0, check_same_thread=False)
            return self._conn.execute(sql, (event_id,)).fetchone()
        except sqlite3.Error as exc:
            raise ApiError(503, f"the decision log cannot be read ({exc}); retry later", "event_id") from None

    def get(self, event_id: str) -> tuple[float, np.ndarray] | None:
        """(time, shown ids) of a decision, or None."""
        with self._lock:
            found = self._recent.get(event_id)
            if found is not None:
                return found
            row = self._read("SELECT time, shown FROM decisions WHERE event_id = ?", event_id)
            if row is None:
                self._read_spilled()
                return self._recent.get(event_id)
        return float(row[0]), decode_id_lists([row[1]])[0]

    def _read_spilled(self) -> None:
        """Remember the decisions and feedback that spill journals gained since the last look (under the
        lock). A journal that cannot be read leaves the answer to the log alone."""
        if self._spilled is None:
            return
        try:
            groups = self._spilled.new_groups()
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            LOGGER.warning("spill journals in %s not read: %s", self._spilled.directory, exc)
            return
        for group in groups:
            for batch in group.decisions:
                for event_id, when, shown in zip(batch.event_id, batch.time, batch.shown, strict=True):
                    self._recent[str(event_id)] = (float(when), np.asarray(shown))
            for batch, late in zip(group.feedback, group.late, strict=True):
                for i, event_id in enumerate(batch.event_id):
                    stored = {
                        "late": bool(late),
                        "clicks": np.asarray(batch.clicks[i]).tolist(),
                        "conversions": np.asarray(batch.conversions[i]).tolist(),
                    }
                    self._feedback.setdefault(str(event_id), stored)
        while len(self._recent) > self.capacity:
            self._recent.popitem(last=False)
        while len(self._feedback) > self.capacity:
            self._feedback.popitem(last=False)

    def feedback(self, event_id: str) -> dict[str, Any] | None:
        """The feedback stored (or queued by this worker) for a decision: ``late``, ``clicks``,
        ``conversions``; None when there is none."""
        with self._lock:
            found = self._feedback.get(event_id)
            if found is not None:
                return found
            row = self._read("SELECT late, clicks, conversions FROM feedback WHERE event_id = ?", event_id)
            if row is None:
                self._read_spilled()
                return self._feedback.get(event_id)
        return {"late": bool(row[0]), "clicks": json.loads(row[1]), "conversions": json.loads(row[2])}

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class ServiceState:
    """The pipeline, decision writer, feedback log and metrics of one worker.

    Parameters
    ----------
    config : ServiceConfig
    load : bool
        Build the pipeline now; a failure is kept in `load_error` (GET /readyz answers 503 with it) and the
        state serves no reranks until a reload succeeds.
    """

    def __init__(self, config: ServiceConfig, *, load: bool = True) -> None:
        self.config = config
        self.metrics = Metrics()
        self.metrics.set_loaded(False)
        self.writer = LogWriter(config.log, spill_dir=config.spill_dir, on_health=self.metrics.set_log_health)
        self.recent = RecentDecisions(config.log, spill_dir=self.writer.spill_dir)
        self.loaded: Loaded | None = None
        self.load_error: LoadError | None = None
        self._rerank_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._closed = False
        _OPEN.append(self)
        #: The policy directory this worker follows (`service.follow`), its last check and last refusal.
        self.followed: Path | None = None
        self.policy_checked_at: float | None = None
        self.policy_refused: dict[str, Any] | None = None
        self._follower: PolicyFollower | None = None
        if load:
            try:
                self._swap(build_pipeline(config))
            except LoadError as exc:
                self.load_error = exc
                LOGGER.error("service: pipeline not loaded: %s: %s", exc.field, exc.message)
        self._sync_follower()

    # -- loading ---------------------------------------------------------------------------------------
    def reload(self, overrides: Mapping[str, Any] | None = None) -> Loaded:
        """Build a pipeline from the current config with `overrides` (``models``, ``policy``,
        ``section_models``), then swap it in. On failure the serving pipeline stays and the error is raised:
        `ServiceConfigError` for an invalid override, `LoadError` for a pipeline that cannot be built, each
        naming the config key."""
        with self._reload_lock:
            try:
                config = self.config.with_reload(overrides) if overrides else self.config
                check_section_names(config, (overrides or {}).get("section_models", {}))
                validate_in_child(config, timeout=config.reload_timeout_seconds)
                loaded = build_pipeline(config)
            except ServiceError:
                self.metrics.inc("sectionrank_reloads_total", result="refused")
                raise
            self._swap(loaded)
            self.config = config
            self.load_error = None
            self.metrics.inc("sectionrank_reloads_total", result="ok")
        self._sync_follower()
        return loaded

    # -- following a policy directory (service.follow) -------------------------------------------------
    def _sync_follower(self) -> None:
        """Follow the config's policy directory (if it names one and polling is on), and publish the view."""
        self.followed = followed_directory(self.config)
        poll = self.config.policy_poll_seconds
        if self.followed is not None and poll > 0 and self._follower is None and not self._closed:
            self._follower = PolicyFollower(self.follow_policy, poll).start()
        self._publish_view()

    def follow_policy(self) -> bool:
        """Check the followed directory once; a newly published version is validated in a separate process
        (as a reload is) and swapped in. Returns whether it was; a refused version is counted, kept in
        `policy_refused`, and not tried again."""
        directory = self.followed
        self.policy_checked_at = time.time()
        version = current_version(directory) if directory is not None and directory.is_dir() else None
        loaded = self.loaded
        refused = (self.policy_refused or {}).get("version")
        if version is None or loaded is None or version in (loaded.policy_version, refused):
            self._publish_view()
            return False
        assert directory is not None
        spec = str(directory / VERSIONS / version)
        with self._reload_lock:
            loaded = self.loaded
            assert loaded is not None
            try:
                config = loaded.config.with_reload({"policy": spec})
                validate_in_child(config, timeout=config.reload_timeout_seconds, policy_only=True)
                policy = load_policy(spec, loaded.sections, config.policy_explore)
            except ServiceError as exc:
                self.metrics.inc("sectionrank_policy_follows_total", result="refused")
                self.policy_refused = {
                    "version": version,
                    "key": exc.field,
                    "problem": exc.message,
                    "at": time.time(),
                }
                LOGGER.error("service: policy version %s refused: %s: %s", version, exc.field, exc.message)
                self._publish_view()
                return False
            pipeline = copy.copy(loaded.pipeline)
            pipeline.policy = policy
            self._swap(
                replace(
                    loaded,
                    config=config,
                    pipeline=pipeline,
                    loaded_at=time.time(),
                    caches={},
                    policy_version=version,
                    policy_spec=spec,
                )
            )
        self.metrics.inc("sectionrank_policy_follows_total", result="ok")
        LOGGER.info("service: now serving policy version %s of %s", version, directory)
        self._publish_view()
        return True

    def view(self) -> dict[str, Any]:
        """This worker's view: pid, the policy it serves (version, spec, loaded at), the last check."""
        loaded = self.loaded
        return {
            "pid": os.getpid(),
            "policy_version": loaded.policy_version if loaded is not None else None,
            "policy": loaded.policy_spec if loaded is not None else None,
            "loaded_at": loaded.loaded_at if loaded is not None else None,
            "followed": str(self.followed) if self.followed is not None else None,
            "checked_at": self.policy_checked_at,
            "refused": self.policy_refused,
        }

    def _publish_view(self) -> None:
        if self.followed is None:
            return
        try:
            write_view(workers_dir(self.config), self.view())
        except OSError as exc:
            LOGGER.warning("service: worker view not written: %s", exc)

    def views(self) -> list[dict[str, Any]]:
        """Every live worker's view (only this one's when no policy directory is followed)."""
        if self.followed is None:
            return [self.view()]
        found = {v["pid"]: v for v in read_views(workers_dir(self.config))}
        found[os.getpid()] = self.view()
        return [found[pid] for pid in sorted(found)]

    def _swap(self, loaded: Loaded) -> None:
        # Under the rerank lock: no request is using the old policy while it is closed, and a request that
        # read the old `loaded` before the swap runs on the new pipeline (see `rerank`).
        with self._rerank_lock:
            old, self.loaded = self.loaded, loaded
            self.metrics.set_loaded(True)
            if old is not None and old.pipeline.policy is not loaded.pipeline.policy:
                close = getattr(old.pipeline.policy, "close", None)
                if callable(close):
                    close()

    def require_loaded(self) -> Loaded:
        loaded = self.loaded
        if loaded is None:
            why = self.load_error.message if self.load_error else "not loaded yet"
            raise ApiError(
                503, f"no models loaded: {why}", self.load_error.field if self.load_error else None
            )
        return loaded

    # -- rerank ----------------------------------------------------------------------------------------
    def rerank(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Serve a rerank body: validate, answer from the cache or the pipeline, queue the decision."""
        started = time.perf_counter()
        loaded = self.require_loaded()
        request = parse_rerank(body, loaded.sections)
        size = loaded.sections[request.section].serving.cache_size
        key = cache_key(body) if size > 0 else None
        cache = loaded.caches.setdefault(request.section, OrderedDict()) if key is not None else None
        cached = None
        if cache is not None:
            with self._rerank_lock:
                cached = cache.get(key)
                if cached is not None:
                    cache.move_to_end(key)
        if cached is not None:
            result = self._from_cache(cached, request)
        else:
            with self._rerank_lock:
                result = (self.loaded or loaded).pipeline.rerank(request)
                if cache is not None and result.fallback is None:
                    cache[key] = result
                    while len(cache) > size:
                        cache.popitem(last=False)
        logged = self._submit(result.decision)
        elapsed = time.perf_counter() - started
        self.metrics.rerank(
            request.section, elapsed, arm=result.arm_id, fallback=result.fallback, cached=cached is not None
        )
        return response_payload(
            result, request, cached=cached is not None, total_ms=elapsed * 1e3, logged=logged
        )

    def _from_cache(self, first: RerankResult, request: RerankRequest) -> RerankResult:
        event_id = uuid.uuid4().hex
        when = float(request.context.get("time", time.time()))
        context = {k: v for k, v in first.decision.context[0].items() if k != "request_id"}
        context["cached"] = True
        context["cached_from"] = first.event_id
        if request.request_id is not None:
            context["request_id"] = request.request_id
        decision = replace(
            first.decision, event_id=np.array([event_id]), time=np.array([when]), context=[context]
        )
        return replace(first, event_id=event_id, decision=decision, timing_ms={})

    def _submit(self, decision: DecisionBatch | None) -> bool:
        """Queue a decision for the log; whether it is promised to it (False while the writer is degraded)."""
        if decision is None:
            return False
        self.recent.add(str(decision.event_id[0]), float(decision.time[0]), decision.shown[0])
        try:
            logged = self.writer.submit_decisions(decision)
        except queue.Full:
            raise ApiError(503, "the decision log queue is full; retry later") from None
        if not logged:
            self.metrics.inc("sectionrank_unlogged_total", kind="decision")
        return logged

    # -- feedback --------------------------------------------------------------------------------------
    def feedback(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Queue feedback on a served decision for the log; idempotent (a repeat is answered with the stored
        feedback), 404 for an unknown event. Never waits for the log's disk or lock."""
        request = parse_feedback(body)
        found = self.recent.get(request.event_id)
        if found is None:
            raise ApiError(404, f"no decision with event_id {request.event_id!r}", "event_id")
        earlier = self.recent.feedback(request.event_id)
        if earlier is not None:
            # Feedback is idempotent: the first stays, and a repeat is answered with what is stored.
            self.metrics.inc("sectionrank_feedback_total", result="repeat")
            return {"event_id": request.event_id, "stored": False, "logged": True, **earlier}
        decided_at, shown = found
        clicks = positions("clicks", request.clicks, shown, request.event_id)
        conversions = positions("conversions", request.conversions, shown, request.event_id)
        not_clicked = np.setdiff1d(conversions, clicks)
        if not_clicked.size:
            raise ApiError(
                422, f"position {int(not_clicked[0])} converted but was not clicked", "conversions"
            )
        late = request.time - decided_at > self.config.reward_wait_seconds
        batch = FeedbackBatch(
            event_id=np.array([request.event_id]),
            time=np.array([request.time]),
            clicks=[clicks],
            conversions=[conversions],
            revenue=np.array([request.revenue]),
            reward=np.array([request.reward]),
        )
        try:
            logged = self.writer.submit_feedback(batch, late=late)
        except queue.Full:
            raise ApiError(503, "the decision log queue is full; retry later") from None
        if not logged:
            self.metrics.inc("sectionrank_unlogged_total", kind="feedback")
        stored = {"late": bool(late), "clicks": clicks.tolist(), "conversions": conversions.tolist()}
        self.recent.add_feedback(request.event_id, stored)
        self.metrics.inc("sectionrank_feedback_total", result="late" if late else "stored")
        return {"event_id": request.event_id, "stored": True, "logged": logged, **stored}

    def metrics_text(self) -> bytes:
        """GET /metrics: this worker's log health published now, then every worker's metrics rendered."""
        self.metrics.set_log_health(self.writer.health())
        return self.metrics.render()

    # -- shutdown --------------------------------------------------------------------------------------
    def close(self) -> None:
        """Drain the decision queue and close the logs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._follower is not None:
            self._follower.stop()
        if self.followed is not None:
            (workers_dir(self.config) / f"{os.getpid()}.json").unlink(missing_ok=True)
        self.writer.close()
        self.recent.close()
        if self.loaded is not None:
            close = getattr(self.loaded.pipeline.policy, "close", None)
            if callable(close):
                close()
        if self in _OPEN:
            _OPEN.remove(self)


def positions(
    field_name: str, slots: tuple[tuple[str, int | str], ...], shown: np.ndarray, event_id: str
) -> np.ndarray:
    """Sorted distinct 0-based positions (m,) int64 of clicks given as positions or shown item ids."""
    kinds = [kind for kind, _ in slots]
    values = [value for _, value in slots]
    out = np.zeros(len(slots), dtype=np.int64)
    is_pos = np.array([k == "position" for k in kinds], dtype=bool)
    if is_pos.any():
        pos = np.array([v for v, p in zip(values, is_pos, strict=True) if p], dtype=np.int64)
        past = np.flatnonzero(pos >= len(shown))
        if past.size:
            index = int(np.flatnonzero(is_pos)[past[0]])
            raise ApiError(
                422,
                f"position {pos[past[0]]} is past the {len(shown)} items shown in event {event_id!r}",
                f"{field_name}[{index}].position",
            )
        out[is_pos] = pos
    if (~is_pos).any():
        wanted = np.empty(int((~is_pos).sum()), dtype=object)
        wanted[:] = [v for v, p in zip(values, is_pos, strict=True) if not p]
        shown_obj = np.empty(len(shown), dtype=object)
        shown_obj[:] = list(shown)
        match = wanted[:, None] == shown_obj[None, :]
        missing = np.flatnonzero(~match.any(axis=1))
        if missing.size:
            index = int(np.flatnonzero(~is_pos)[missing[0]])
            raise ApiError(
                422,
                f"item {wanted[missing[0]]!r} was not shown in event {event_id!r}",
                f"{field_name}[{index}]",
            )
        out[~is_pos] = match.argmax(axis=1)
    return np.unique(out)


def response_payload(
    result: RerankResult, request: RerankRequest, *, cached: bool, total_ms: float, logged: bool = True
) -> dict[str, Any]:
    """The JSON body of a rerank response."""
    ids = result.item_ids.tolist()
    scores = [s if math.isfinite(s) else None for s in result.scores.tolist()]
    items = [{"id": i, "score": s, "rank": r} for r, (i, s) in enumerate(zip(ids, scores, strict=True), 1)]
    timing = {**result.timing_ms, "total": round(total_ms, 4)}
    payload = {
        "event_id": result.event_id,
        "section": result.section,
        "items": items,
        "arm": {"id": result.arm_id, "knobs": result.knobs, "propensity": result.propensity},
        "model_versions": result.model_versions,
        "timing": timing,
        "fallback": result.fallback,
        "cached": cached,
        "logged": logged,
    }
    if request.request_id is not None:
        payload["request_id"] = request.request_id
    return payload


#: Every open state of this process, closed by gunicorn's worker_exit hook and at interpreter exit.
_OPEN: list[ServiceState] = []


def open_states() -> list[ServiceState]:
    """Every open state of this process (one per app)."""
    return list(_OPEN)


def close_all() -> None:
    """Close every open state of this process (drains their decision queues)."""
    for state in list(_OPEN):
        state.close()


atexit.register(close_all)
