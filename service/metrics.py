"""Prometheus metrics of the whole service (GET /metrics), summed over every gunicorn worker.

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` names a directory that the master empties before any worker
starts (`service.gunicorn_conf.on_starting`; `sectionrank serve` creates one when the variable is unset).
prometheus_client then keeps each worker's values in memory-mapped files there, one set per pid, and a scrape,
whichever worker answers it, renders all of them through a ``MultiProcessCollector``: counters and histograms
are summed over every worker that ever ran (an exited worker's counts stay in the totals, so they never go
back), gauges are combined by their ``multiprocess_mode`` over the live workers (the master's ``child_exit``
hook marks a dead worker's files). Without the variable (tests, a single process) each `Metrics` lives in
its own registry.

One `Metrics` per process in multiprocess mode: two would write the same keys of the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.log_writer import WriterHealth

#: The variable that switches prometheus_client to its multiprocess mode (as in `service.gunicorn_conf`).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Latency histogram bucket upper bounds, in seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

#: Counters: name -> (help, label names).
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "sectionrank_http_requests_total": ("HTTP requests by endpoint and status code.", ("endpoint", "status")),
    "sectionrank_http_errors_total": ("HTTP responses with a 4xx or 5xx status.", ("endpoint", "status")),
    "sectionrank_rerank_requests_total": ("Rerank requests served, by section.", ("section",)),
    "sectionrank_arm_total": ("Knob arms chosen, by section and arm id.", ("section", "arm")),
    "sectionrank_fallbacks_total": ("Rerank fallbacks, by section and kind.", ("section", "kind")),
    "sectionrank_cache_hits_total": ("Rerank responses served from the section cache.", ("section",)),
    "sectionrank_feedback_total": ("Feedback requests by result (stored, repeat, late).", ("result",)),
    "sectionrank_reloads_total": ("Model reloads by result (ok, refused).", ("result",)),
    "sectionrank_policy_follows_total": (
        "Published policy versions a worker followed, by result (ok, refused).",
        ("result",),
    ),
    "sectionrank_unlogged_total": ("Responses answered with logged: false, by kind.", ("kind",)),
    "sectionrank_decisions_written_total": ("Records written to the log (replayed ones included).", ()),
    "sectionrank_decisions_failed_total": ("Decisions the log refused (invalid for its codec).", ()),
    "sectionrank_log_spilled_total": ("Records written to the spill journal (log unwritable).", ()),
    "sectionrank_log_dropped_total": ("Held records dropped past the memory bound.", ()),
    "sectionrank_log_write_errors_total": ("Failed writes to the log or the journal.", ()),
}

#: Gauges: name -> (help, how the live workers' values combine).
GAUGES: dict[str, tuple[str, str]] = {
    "sectionrank_workers": ("Live worker processes.", "livesum"),
    "sectionrank_decisions_queued": ("Records waiting for the log writers (held ones included).", "livesum"),
    "sectionrank_log_held": ("Records held in memory: neither log nor journal is writable.", "livesum"),
    "sectionrank_log_spill_bytes": ("Bytes waiting in the spill journals (all workers').", "livemax"),
    "sectionrank_log_degraded": ("1 while some worker can write neither the log nor the journal.", "livemax"),
    "sectionrank_models_loaded": ("1 when every live worker has a pipeline loaded and serving.", "livemin"),
}

#: The writer's running totals behind each log counter (`WriterHealth` fields).
_LOG_COUNTERS = {
    "written": "sectionrank_decisions_written_total",
    "failed": "sectionrank_decisions_failed_total",
    "spilled": "sectionrank_log_spilled_total",
    "dropped": "sectionrank_log_dropped_total",
    "write_errors": "sectionrank_log_write_errors_total",
}


def multiprocess_dir() -> Path | None:
    """The directory of prometheus_client's multiprocess mode, or None when it is off."""
    value = os.environ.get(MULTIPROC_ENV, "")
    return Path(value) if value else None


class Metrics:
    """The service's counters, gauges and latency histograms (prometheus_client), rendered as Prometheus text.

    Parameters
    ----------
    multiprocess : bool, optional
        Render every process's files in `multiprocess_dir()` (default: whether the variable is set).
    """

    def __init__(self, *, multiprocess: bool | None = None) -> None:
        self.directory = multiprocess_dir() if multiprocess is not False else None
        own = CollectorRegistry(auto_describe=False)
        # In multiprocess mode the values live in files; the registry that renders reads them all.
        register = None if self.directory is not None else own
        self._counters = {
            name: Counter(name, text, labels, registry=register) for name, (text, labels) in COUNTERS.items()
        }
        self._latency = Histogram(
            "sectionrank_rerank_latency_seconds",
            "Rerank latency inside the worker, by section.",
            ("section",),
            buckets=LATENCY_BUCKETS,
            registry=register,
        )
        self._gauges = {
            name: Gauge(name, text, registry=register, multiprocess_mode=mode)
            for name, (text, mode) in GAUGES.items()
        }
        # One sample per live worker: prometheus_client adds the pid label in multiprocess mode ("liveall").
        info_labels = () if self.directory is not None else ("pid",)
        info = Gauge(
            "sectionrank_worker_info",
            "A live worker process, by pid.",
            info_labels,
            registry=register,
            multiprocess_mode="liveall",
        )
        (info.labels(pid=str(os.getpid())) if info_labels else info).set(1)
        self._gauges["sectionrank_workers"].set(1)
        self._children: dict[tuple, object] = {}
        self._log_totals = dict.fromkeys(_LOG_COUNTERS, 0)
        if self.directory is not None:
            self.registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(self.registry, path=str(self.directory))
        else:
            self.registry = own

    def _child(self, name: str, *values: str):
        key = (name, *values)
        child = self._children.get(key)
        if child is None:
            metric = self._latency if name == "sectionrank_rerank_latency_seconds" else self._counters[name]
            child = self._children[key] = metric.labels(*values) if values else metric
        return child

    # -- request side ----------------------------------------------------------------------------------
    def inc(self, name: str, amount: float = 1.0, **labels: object) -> None:
        """Add `amount` to a counter; `labels` are its label values by name."""
        names = COUNTERS[name][1]
        self._child(name, *(str(labels[n]) for n in names)).inc(amount)

    def observe(self, name: str, seconds: float, **labels: object) -> None:
        """Observe one latency of the `section` histogram (the only histogram)."""
        self._child(name, str(labels["section"])).observe(seconds)

    def count_http(self, endpoint: str, status: int) -> None:
        """Count one HTTP response, and one error if its status is 4xx or 5xx."""
        code = str(status)
        self._child("sectionrank_http_requests_total", endpoint, code).inc()
        if status >= 400:
            self._child("sectionrank_http_errors_total", endpoint, code).inc()

    def rerank(
        self, section: str, seconds: float, *, arm: str, fallback: str | None = None, cached: bool = False
    ) -> None:
        """Count one served rerank: its section, latency, arm, fallback and cache hit."""
        self._child("sectionrank_rerank_requests_total", section).inc()
        self._child("sectionrank_rerank_latency_seconds", section).observe(seconds)
        self._child("sectionrank_arm_total", section, str(arm)).inc()
        if fallback is not None:
            self._child("sectionrank_fallbacks_total", section, str(fallback)).inc()
        if cached:
            self._child("sectionrank_cache_hits_total", section).inc()

    # -- state -----------------------------------------------------------------------------------------
    def set_loaded(self, loaded: bool) -> None:
        self._gauges["sectionrank_models_loaded"].set(1.0 if loaded else 0.0)

    def set_log_health(self, health: WriterHealth) -> None:
        """Publish this worker's log health: gauges set, counters advanced by what the totals grew."""
        gauges = self._gauges
        gauges["sectionrank_decisions_queued"].set(health.queued)
        gauges["sectionrank_log_held"].set(health.held)
        gauges["sectionrank_log_spill_bytes"].set(health.spill_bytes)
        gauges["sectionrank_log_degraded"].set(1.0 if health.degraded else 0.0)
        for field, name in _LOG_COUNTERS.items():
            total = getattr(health, field)
            grown = total - self._log_totals[field]
            if grown > 0:
                self._counters[name].inc(grown)
                self._log_totals[field] = total

    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of every worker (multiprocess) or this process."""
        return generate_latest(self.registry)
