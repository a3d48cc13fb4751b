"""gunicorn settings of `sectionrank serve` (``gunicorn --config python:service.gunicorn_conf``).

- No ``preload_app``: each worker imports the app and builds its pipeline after the fork, so no LightGBM
  booster or VW workspace crosses a fork (LightGBM #4751, gunicorn #2520).
- Sync workers with a buffering front (`service.worker.BufferingSyncWorker`): one request at a time per
  worker, so the per-worker pipeline needs no thread pool, and LightGBM predicts with ``num_threads=1`` (the
  pipeline passes it on every call); a connection reaches the app only once its whole request has arrived,
  so a client that stalls holds no worker (it is answered a JSON 408 after 5 s). gthread workers (8 threads)
  also kept health probes answering during such stalls but doubled the 2-connection p50 in `make bench`
  (3.3 against 1.7 ms at 100 candidates), so they are not used.
- ``post_worker_init`` makes a worker whose pipeline failed to load exit before it takes a request, so it
  never answers 503 in turn with healthy workers; the master replaces it.
- Metrics of the whole service (`service.metrics`): ``on_starting`` gives the workers an empty
  ``PROMETHEUS_MULTIPROC_DIR`` (a new temporary directory when it is unset) before any of them starts, and
  ``child_exit`` marks a dead worker's files, so its live gauges leave the sums while its counts stay. This
  module does not import prometheus_client: the master must set the variable before anything imports it.
- ``post_worker_init`` also prints `sectionrank serve`'s banner (where it listens, a curl command, the
  notes given with ``--note``) again once every worker of the first start has loaded, below gunicorn's
  start-up lines, which had scrolled it away (`announce_ready`).
- ``worker_exit`` closes the worker's decision writer, draining its queue into the log: a SIGTERM to the
  master (graceful stop) loses no decision that a response acknowledged. An ``atexit`` hook in
  service.state does the same when a worker exits another way.

``bind``, ``workers`` and ``timeout`` come from the command line.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

#: The variable that switches prometheus_client to its multiprocess mode (read when it is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The variable holding `sectionrank serve`'s banner, printed again once every worker is ready.
BANNER_ENV = "SECTIONRANK_BANNER"
#: Files `announce_ready` leaves in the metrics directory: one per ready worker, and one once it printed.
READY_PREFIX = "ready-"
ANNOUNCED = "banner-shown"

preload_app = False
worker_class = "service.worker.BufferingSyncWorker"
graceful_timeout = 30
keepalive = 2
# A worker loads its models at start; give it time on a slow machine.
timeout = 30
accesslog = None
errorlog = "-"
loglevel = "info"
proc_name = "sectionrank"


def prepare_metrics_dir(environ: dict[str, str] | os._Environ = os.environ) -> Path:
    """Create or empty the multiprocess metrics directory named by `environ` (set to a new temporary
    directory when unset) and return it. Only prometheus_client's ``*.db`` files are removed."""
    value = environ.get(MULTIPROC_ENV, "")
    if not value:
        value = environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="sectionrank-metrics-")
    directory = Path(value)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in [*directory.glob("*.db"), *directory.glob(READY_PREFIX + "*"), directory / ANNOUNCED]:
        stale.unlink(missing_ok=True)
    return directory


def on_starting(server) -> None:
    """Before any worker starts: an empty multiprocess metrics directory, inherited by every worker."""
    directory = prepare_metrics_dir()
    server.log.info("metrics of all workers in %s", directory)


def child_exit(server, worker) -> None:
    """A worker is gone: its live gauges (worker count, queue depth, ...) leave the sums."""
    from prometheus_client import multiprocess

    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(worker.pid)


def post_fork(server, worker) -> None:
    """Keep OpenMP to one thread in the worker before anything loads LightGBM."""
    os.environ["OMP_NUM_THREADS"] = "1"


#: The worker's GIL switch interval (Python's default is 5 ms). A worker has a request thread and the log
#: writer's thread; when the writer holds the GIL, the request thread waits for it up to this long. Measured
#: with the writer sleeping its linger (docs/performance.md, "The log writer and the GIL"): 8-connection
#: throughput +7% over the default in 6 of 6 rounds side by side, p50 -6%.
SWITCH_INTERVAL = 0.001

#: Seconds a worker that could not load its pipeline waits before it exits for the master to replace it: it
#: never takes a request (out of rotation), and a config that stays broken is no busy restart loop.
LOAD_FAILURE_PAUSE = 5.0


def post_worker_init(worker) -> None:
    """A worker whose pipeline did not load leaves rotation: it exits before accepting any request, and the
    master starts a new one (which loads from the config again). Healthy workers keep serving meanwhile, with
    the GIL switch interval at `SWITCH_INTERVAL`."""
    import sys
    import time

    from service.state import open_states

    failed = [state.load_error for state in open_states() if state.loaded is None]
    if failed:
        error = failed[0]
        worker.log.error(
            "worker %s: pipeline not loaded (%s: %s); exiting for the master to replace it",
            worker.pid,
            error.field if error else "models",
            error.message if error else "not loaded",
        )
        time.sleep(LOAD_FAILURE_PAUSE)
        sys.exit(1)
    sys.setswitchinterval(SWITCH_INTERVAL)
    announce_ready(worker)


def announce_ready(worker, environ: dict[str, str] | os._Environ = os.environ, out=None) -> bool:
    """Print the banner of `BANNER_ENV` once all ``worker.cfg.workers`` workers of the first start are ready.

    Each ready worker leaves a ``ready-<pid>`` file in the metrics directory (emptied before the workers
    start); the worker that completes the count and first creates ``banner-shown`` (an exclusive create, so
    one of two workers ready at once) prints. A worker started later to replace one prints nothing. Returns
    whether this worker printed."""
    import sys

    banner, directory = environ.get(BANNER_ENV), environ.get(MULTIPROC_ENV)
    if not banner or not directory:
        return False
    directory = Path(directory)
    (directory / f"{READY_PREFIX}{worker.pid}").touch()
    if len(list(directory.glob(READY_PREFIX + "*"))) < worker.cfg.workers:
        return False
    try:
        os.close(os.open(directory / ANNOUNCED, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    out = sys.stdout if out is None else out
    print(f"{banner}\n", file=out, flush=True)
    return True


def worker_exit(server, worker) -> None:
    """Drain the worker's decision queue into the log before the process ends."""
    from service.state import close_all

    close_all()
