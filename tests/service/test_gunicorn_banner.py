"""The serve banner (where it listens, the notes such as where a report is, a curl command) is printed again
once every worker is ready, below gunicorn's start-up lines: exactly once per start, by one worker."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest

from service.gunicorn_conf import BANNER_ENV, MULTIPROC_ENV, announce_ready, prepare_metrics_dir
from tests.service.gunicorn_server import start, stop


def worker(pid: int, workers: int = 2):
    return SimpleNamespace(pid=pid, cfg=SimpleNamespace(workers=workers))


def test_announce_ready_prints_once_when_the_last_worker_of_the_start_is_ready(tmp_path):
    env = {BANNER_ENV: "sectionrank: serving\n  report: r.html", MULTIPROC_ENV: str(tmp_path)}
    out = io.StringIO()
    assert not announce_ready(worker(11), env, out)
    assert out.getvalue() == ""
    assert announce_ready(worker(12), env, out)
    assert out.getvalue() == "sectionrank: serving\n  report: r.html\n\n"
    # A worker started later to replace one (or one that lost the race) prints nothing more.
    assert not announce_ready(worker(13), env, out)
    assert not announce_ready(worker(12), env, out)
    assert out.getvalue().count("sectionrank: serving") == 1


def test_announce_ready_prints_again_after_the_metrics_directory_is_emptied_for_a_new_start(tmp_path):
    env = {BANNER_ENV: "banner", MULTIPROC_ENV: str(tmp_path)}
    out = io.StringIO()
    assert announce_ready(worker(1, workers=1), env, out)
    prepare_metrics_dir(env)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert announce_ready(worker(2, workers=1), env, out)
    assert out.getvalue() == "banner\n\nbanner\n\n"


@pytest.mark.parametrize("env", [{MULTIPROC_ENV: "x"}, {BANNER_ENV: "banner"}, {}])
def test_announce_ready_without_a_banner_or_a_directory_prints_nothing(env):
    out = io.StringIO()
    assert not announce_ready(worker(1, workers=1), env, out)
    assert out.getvalue() == ""


@pytest.mark.slow
def test_serve_repeats_its_banner_with_the_notes_below_gunicorns_start_up_lines(tmp_path, store_db, saved):
    note = "comparison report: .demo/compare/report.html"
    process, port, _, out = start(tmp_path, store_db, saved, extra_args=("--note", note))
    try:
        deadline = time.monotonic() + 30
        while out.read_text().count(note) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        printed = out.read_text()
    finally:
        stop(process)
    assert printed.count(note) == 2, printed
    assert printed.count(f"on http://127.0.0.1:{port} with 2 workers") == 2
    repeated = printed.rindex(f"on http://127.0.0.1:{port} with 2 workers")
    # Every start-up line of gunicorn (listening, each worker booting) comes before the repeated banner.
    assert 0 <= printed.rindex("Listening at") < repeated
    assert printed.count("Booting worker") == 2
    assert printed.rindex("Booting worker") < repeated
    assert printed.index(note, repeated) > repeated
