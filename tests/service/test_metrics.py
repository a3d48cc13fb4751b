"""GET /metrics: counters and latency histograms per section in one process, and the sum over every worker
process that shares a prometheus_client multiprocess directory (as gunicorn's workers do)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from service.app import get_state
from service.gunicorn_conf import MULTIPROC_ENV, child_exit, prepare_metrics_dir

ROOT = Path(__file__).resolve().parents[2]


def samples(text: str | bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named `name` in a Prometheus text exposition, by their sorted label pairs."""
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def by_section(text: str | bytes, name: str) -> dict[str, float]:
    return {dict(labels)["section"]: value for labels, value in samples(text, name).items()}


def histogram_rows(text: str | bytes, section: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a section's latency histogram, by bound."""
    rows = samples(text, "sectionrank_rerank_latency_seconds_bucket")
    rows = {dict(labels)["le"]: value for labels, value in rows.items() if dict(labels)["section"] == section}
    return sorted((float(le), value) for le, value in rows.items())


def run_python(code: str, directory: Path, *args: str) -> str:
    env = {**os.environ, MULTIPROC_ENV: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_metrics_render_counts_and_latency_per_section(client, rerank_body):
    sent = {"discover": 3, "similar_items": 2}
    for section, n in sent.items():
        for _ in range(n):
            assert client.post("/v1/rerank", json=rerank_body(section)).status_code == 200
    assert get_state(client.application).writer.flush()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data()
    assert by_section(text, "sectionrank_rerank_requests_total") == sent
    assert by_section(text, "sectionrank_rerank_latency_seconds_count") == sent
    for section, n in sent.items():
        rows = histogram_rows(text, section)
        counts = [count for _, count in rows]
        assert counts == sorted(counts)
        assert rows[-1] == (float("inf"), n)
        assert by_section(text, "sectionrank_rerank_latency_seconds_sum")[section] > 0
    arms = samples(text, "sectionrank_arm_total")
    assert sum(v for labels, v in arms.items() if dict(labels)["section"] == "discover") == 3
    http = samples(text, "sectionrank_http_requests_total")
    assert http[(("endpoint", "/v1/rerank"), ("status", "200"))] == 5
    assert samples(text, "sectionrank_decisions_written_total") == {(): 5}
    assert samples(text, "sectionrank_decisions_queued") == {(): 0}
    assert samples(text, "sectionrank_log_degraded") == {(): 0}
    assert samples(text, "sectionrank_workers") == {(): 1}
    assert samples(text, "sectionrank_models_loaded") == {(): 1}
    assert samples(text, "sectionrank_worker_info") == {(("pid", str(os.getpid())),): 1}


def test_metrics_count_errors_by_endpoint_and_status(client):
    assert client.post("/v1/rerank", json={"section": "nosuch"}).status_code == 422
    text = client.get("/metrics").get_data()
    errors = samples(text, "sectionrank_http_errors_total")
    assert errors[(("endpoint", "/v1/rerank"), ("status", "422"))] >= 1


OTHER_WORKER = """
    import os
    from service.metrics import Metrics

    metrics = Metrics()
    for _ in range(3):
        metrics.rerank("discover", 0.003, arm="other")
        metrics.count_http("/v1/rerank", 200)
    print(os.getpid())
"""

SCRAPING_WORKER = """
    import json, sys
    from service.app import create_app, get_state
    from service.config import ServiceConfig

    app = create_app(ServiceConfig.from_dict(json.loads(sys.argv[1]), environ={}))
    client = app.test_client()
    for _ in range(2):
        assert client.post("/v1/rerank", json=json.loads(sys.argv[2])).status_code == 200
    sys.stdout.write(client.get("/metrics").get_data(as_text=True))
    get_state(app).close()
"""


def test_metrics_sum_every_worker_of_the_multiprocess_dir(tmp_path, config_dict, rerank_body, monkeypatch):
    directory = tmp_path / "metrics"
    directory.mkdir()
    other_pid = int(run_python(OTHER_WORKER, directory))
    # The other worker has exited: gunicorn's master marks it dead (its counts stay, its live gauges go).
    monkeypatch.setenv(MULTIPROC_ENV, str(directory))
    child_exit(None, SimpleNamespace(pid=other_pid))
    config = json.dumps(config_dict(tmp_path / "decisions.db"))
    text = run_python(SCRAPING_WORKER, directory, config, json.dumps(rerank_body("discover")))
    assert by_section(text, "sectionrank_rerank_requests_total") == {"discover": 5}
    assert by_section(text, "sectionrank_rerank_latency_seconds_count") == {"discover": 5}
    assert histogram_rows(text, "discover")[-1] == (float("inf"), 5)
    arms = {dict(labels)["arm"]: v for labels, v in samples(text, "sectionrank_arm_total").items()}
    assert arms["other"] == 3
    assert sum(arms.values()) == 5
    http = samples(text, "sectionrank_http_requests_total")
    assert http[(("endpoint", "/v1/rerank"), ("status", "200"))] == 5
    assert samples(text, "sectionrank_workers") == {(): 1}
    (pid,) = (dict(labels)["pid"] for labels in samples(text, "sectionrank_worker_info"))
    assert int(pid) != other_pid


def test_prepare_metrics_dir_empties_the_named_directory(tmp_path):
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    (directory / "README").write_text("kept")
    env = {MULTIPROC_ENV: str(directory)}
    assert prepare_metrics_dir(env) == directory
    assert sorted(p.name for p in directory.iterdir()) == ["README"]


def test_prepare_metrics_dir_creates_one_when_unset():
    env: dict[str, str] = {}
    directory = prepare_metrics_dir(env)
    try:
        assert env[MULTIPROC_ENV] == str(directory)
        assert directory.is_dir()
        assert not any(directory.iterdir())
    finally:
        directory.rmdir()
