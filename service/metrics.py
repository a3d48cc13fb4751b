"""Prometheus text-format metrics of one worker process (GET /metrics).

Each gunicorn worker counts its own requests: a scrape sees the worker that answered it, labelled with its
``pid`` in ``sectionrank_worker_info``. Sum over workers by scraping each, or run one worker per scrape
target. Counters and histograms are guarded by one lock (an increment is ~1 µs).
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import defaultdict

#: Latency histogram bucket upper bounds, in seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_HELP = {
    "sectionrank_http_requests_total": ("counter", "HTTP requests by endpoint and status code."),
    "sectionrank_http_errors_total": ("counter", "HTTP responses with a 4xx or 5xx status, by endpoint."),
    "sectionrank_rerank_requests_total": ("counter", "Rerank requests served, by section."),
    "sectionrank_rerank_latency_seconds": ("histogram", "Rerank latency inside the worker, by section."),
    "sectionrank_arm_total": ("counter", "Knob arms chosen, by section and arm id."),
    "sectionrank_fallbacks_total": ("counter", "Rerank fallbacks, by section and kind."),
    "sectionrank_cache_hits_total": ("counter", "Rerank responses served from the section cache."),
    "sectionrank_feedback_total": ("counter", "Feedback requests by result (stored, repeat, late)."),
    "sectionrank_reloads_total": ("counter", "Model reloads by result (ok, refused)."),
    "sectionrank_decisions_queued": ("gauge", "Decisions waiting for the log writer."),
    "sectionrank_decisions_written_total": ("counter", "Decisions written to the log by this worker."),
    "sectionrank_decisions_failed_total": ("counter", "Decisions the log writer could not write."),
    "sectionrank_log_spilled_total": ("counter", "Records written to the spill journal (log unwritable)."),
    "sectionrank_log_spill_bytes": ("gauge", "Bytes waiting in spill journals."),
    "sectionrank_log_held": ("gauge", "Records held in memory: neither the log nor the journal is writable."),
    "sectionrank_log_dropped_total": ("counter", "Held records dropped past the memory bound."),
    "sectionrank_log_write_errors_total": ("counter", "Failed writes to the log or the journal."),
    "sectionrank_log_degraded": ("gauge", "1 while neither the log nor the journal can be written."),
    "sectionrank_unlogged_total": ("counter", "Responses answered with logged: false, by kind."),
    "sectionrank_models_loaded": ("gauge", "1 when a pipeline is loaded and serving."),
    "sectionrank_worker_info": ("gauge", "The worker process that answered this scrape."),
}


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class Metrics:
    """Counters, gauges and latency histograms with labels, rendered as Prometheus text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        self._hist: dict[str, dict[tuple, list[float]]] = defaultdict(dict)
        self.started = time.time()

    def inc(self, name: str, amount: float = 1.0, **labels: object) -> None:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        with self._lock:
            self._counters[name][key] += amount

    def count_http(self, endpoint: str, status: int) -> None:
        """Count one HTTP response, and one error if its status is 4xx or 5xx."""
        self.inc("sectionrank_http_requests_total", endpoint=endpoint, status=status)
        if status >= 400:
            self.inc("sectionrank_http_errors_total", endpoint=endpoint, status=status)

    def observe(self, name: str, seconds: float, **labels: object) -> None:
        key = tuple(sorted((k, str(v)) for k, v in labels.items()))
        with self._lock:
            row = self._hist[name].get(key)
            if row is None:
                row = self._hist[name][key] = [0.0] * (len(LATENCY_BUCKETS) + 2)
            row[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
            row[-1] += seconds

    def render(self, gauges: dict[str, float] | None = None) -> str:
        """The Prometheus text exposition (format 0.0.4); `gauges` are point-in-time values to add."""
        lines: list[str] = []
        with self._lock:
            counters = {n: dict(v) for n, v in self._counters.items()}
            hists = {n: {k: list(r) for k, r in v.items()} for n, v in self._hist.items()}
        values = {**counters}
        for name, value in (gauges or {}).items():
            values[name] = {(): value}
        values["sectionrank_worker_info"] = {(("pid", str(os.getpid())),): 1.0}
        for name in sorted(set(values) | set(hists)):
            kind, text = _HELP.get(name, ("untyped", name))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            if name in hists:
                for key, row in sorted(hists[name].items()):
                    cumulative = 0.0
                    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), row[:-1], strict=True):
                        cumulative += count
                        le = "+Inf" if bound == float("inf") else repr(bound)
                        lines.append(f"{name}_bucket{_labels((*key, ('le', le)))} {_number(cumulative)}")
                    lines.append(f"{name}_sum{_labels(key)} {row[-1]!r}")
                    lines.append(f"{name}_count{_labels(key)} {_number(cumulative)}")
            else:
                for key, value in sorted(values[name].items()):
                    lines.append(f"{name}{_labels(key)} {_number(value)}")
        return "\n".join(lines) + "\n"
