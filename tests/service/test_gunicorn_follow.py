"""Every gunicorn worker follows the published policy version within the poll interval, without a failed
request: the fallback first, two published versions, a rollback, and a bad version refused by both; then the
learning loop learns what the workers logged."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

from bandits.log import DecisionLog
from bandits.shipped import publish_version, rollback
from heuristics import SectionsConfig
from sectionrank.cli import main
from tests.service.gunicorn_server import RERANK, metric, request, start, stop, worker_pids

SECTIONS = SectionsConfig.load()
POLL_SECONDS = 0.5
#: Polling plus validating the version in a separate process (about 1 s alone; more on a loaded machine).
FOLLOW_WITHIN = POLL_SECONDS + 30.0


def _publish(directory, arm: int, *, bad: bool = False) -> str:
    sources = {
        s.name: {"kind": "fixed", "arm": s.arms[arm].id, "from": "best_fixed_logged"} for s in SECTIONS
    }
    if bad:
        sources["discover"]["arm"] = "no-such-arm"
    return publish_version(directory, sources, {}, {"note": "gunicorn follow test"})


class Traffic(threading.Thread):
    """Reranks on new connections until stopped, counting every answer that is not a 200."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.sent, self.failed = port, 0, []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                status, body = request(self.port, "POST", "/v1/rerank", RERANK)
            except OSError as exc:
                status, body = 0, str(exc).encode()
            self.sent += 1
            if status != 200:
                self.failed.append((status, body[:200]))
            time.sleep(0.02)

    def stop(self) -> None:
        self._halt.set()
        self.join(30)


def _views(port: int) -> dict[int, dict]:
    status, body = request(port, "GET", "/v1/models")
    assert status == 200, body
    return {w["pid"]: w for w in json.loads(body)["workers"]}


def _wait_all(port: int, master: int, version: str | None) -> float:
    """Seconds until every live worker reports `version` through one /v1/models answer."""
    started = time.monotonic()
    while True:
        views = _views(port)
        pids = worker_pids(master)
        serving = {v["policy_version"] for v in views.values()}
        if len(pids) == 2 and set(views) == pids and serving == {version}:
            return time.monotonic() - started
        assert time.monotonic() - started < FOLLOW_WITHIN, f"workers did not all reach {version}: {views}"
        time.sleep(0.1)


@pytest.mark.slow
def test_gunicorn_workers_follow_published_versions_and_rollback_without_failed_requests(
    tmp_path, store_db, saved
):
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    process, port, log_path, out = start(
        tmp_path, store_db, saved, config=f"policy_poll_seconds = {POLL_SECONDS}", policy=str(policy_dir)
    )
    traffic = Traffic(port)
    try:
        assert _wait_all(port, process.pid, None) < FOLLOW_WITHIN  # the fallback, in both workers
        traffic.start()
        for arm in (1, 2):
            version = _publish(policy_dir, arm)
            _wait_all(port, process.pid, version)
            body = request(port, "POST", "/v1/rerank", RERANK)[1]
            assert json.loads(body)["model_versions"]["policy"] == f"shipped-{version}"
            assert json.loads(body)["arm"]["id"] == SECTIONS["discover"].arms[arm].id
        assert rollback(policy_dir) == ("0002", "0001")
        _wait_all(port, process.pid, "0001")
        _publish(policy_dir, 0, bad=True)  # 0003: both workers refuse it and keep 0001
        deadline = time.monotonic() + FOLLOW_WITHIN
        while {(v["refused"] or {}).get("version") for v in _views(port).values()} != {"0003"}:
            assert time.monotonic() < deadline, _views(port)
            time.sleep(0.1)
        assert {v["policy_version"] for v in _views(port).values()} == {"0001"}
        follows = metric(request(port, "GET", "/metrics")[1], "sectionrank_policy_follows_total")
        assert follows[(("result", "refused"),)] == 2
        assert follows[(("result", "ok"),)] == 6  # 0001, 0002 and the rollback to 0001, in each worker
        traffic.stop()
        assert traffic.sent > 0
        assert traffic.failed == []
        # The learning loop reads what the workers served: one cycle learns every decision logged so far.
        served = log_path.parent / "loop.toml"
        served.write_text(
            f'store = "{store_db}"\nlog = "{log_path}"\npolicy = "{policy_dir}"\nreward_wait_seconds = 0.0\n'
            "[loop]\nsettle_seconds = 0.0\nmin_decisions = 10\n"
        )
        with DecisionLog.open(log_path) as log:
            logged = -1
            while logged != log.count():  # the workers' queues drain within a second or so
                logged = log.count()
                time.sleep(1.5)
        result = CliRunner().invoke(main, ["loop", "--config", str(served), "--once"])
        assert result.exit_code == 0, result.output
        line = result.output.splitlines()[-1]
        assert f"decisions (seq 1..{logged})" in line, result.output
        assert "gate: no candidate yet; learned candidates/policy-0001.vw" in line, result.output
    except BaseException:
        print(out.read_text()[-5000:])
        raise
    finally:
        traffic.stop()
        stop(process)
