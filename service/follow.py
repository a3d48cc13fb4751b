"""Following a policy directory: which policy a config serves now, a poller per worker, and worker views.

When the config's ``policy`` is a directory of shipped versions (``sectionrank promote`` and ``sectionrank
loop`` publish them), the service serves its published version (``DIR/current``) and follows it: every
``policy_poll_seconds`` each worker reads ``DIR/current``, and a version it does not serve yet is validated
in a separate process as a reload is (`service.reload_check`), then swapped in without a restart. A version
that fails is refused (``sectionrank_policy_follows_total{result="refused"}``), the worker keeps serving the
one it has, and it does not retry that version.

While the directory has published nothing (it is missing or empty), the service serves ``policy_fallback``
(default ``uniform``: uniform exploration over each section's arms) and follows the directory all the same.
The directory must exist (a missing one is refused as a mistyped path would be).

The check in the separate process (`build_policy`) loads the policy alone, without the rankers (a version
changes nothing else), so it costs a new interpreter and the policy's imports, not a pipeline.

Each worker writes its view (pid, policy version, loaded at, last check, last refusal) to
``<log>.workers/<pid>.json`` (replaced atomically); ``GET /v1/models`` answers with every live worker's view,
so one request shows the whole service.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bandits.base import KnobPolicy
from bandits.context import PolicyContext
from bandits.errors import BanditsError
from bandits.policies import ExploringPolicy
from bandits.shipped import VERSIONS, ShippedPolicy, current_version, is_policy_dir, is_version_dir
from heuristics import HeuristicsError, SectionsConfig
from service.config import ServiceConfig
from service.errors import LoadError, ServiceError

LOGGER = logging.getLogger(__name__)

#: Policy specs that are names, not paths.
_NAMES = ("uniform", "default", "logging")


def _is_spec(policy: str) -> bool:
    return ":" in policy or policy in _NAMES


def followed_directory(config: ServiceConfig) -> Path | None:
    """The policy directory `config` follows: its ``policy`` when that is a directory of shipped versions,
    or a directory that holds no policy yet (no ``current``, no ``policy-*.vw``). A missing path is not one:
    loading it fails, naming ``policy``, so that a mistyped path is not served as the fallback."""
    if _is_spec(config.policy):
        return None
    path = Path(config.policy)
    if is_version_dir(path) or path.is_file():
        return None
    if is_policy_dir(path):
        return path
    if path.is_dir() and not any(path.glob("policy-*.vw")):
        return path
    return None


def policy_source(config: ServiceConfig) -> tuple[str, str | None]:
    """The policy spec to load for `config` now, and the shipped version it is (None when it is none).

    A followed directory gives its published version, pinned as ``DIR/versions/<id>`` (so that a version
    published meanwhile cannot slip in unvalidated), or ``policy_fallback`` while nothing is published.
    """
    directory = followed_directory(config)
    if directory is None:
        path = Path(config.policy)
        return config.policy, path.name if not _is_spec(config.policy) and is_version_dir(path) else None
    version = current_version(directory)
    if version is None:
        return config.policy_fallback, None
    return str(directory / VERSIONS / version), version


def workers_dir(config: ServiceConfig) -> Path:
    """Where the workers write their views: ``<log>.workers`` beside the decision log."""
    return Path(str(config.log) + ".workers")


def write_view(directory: Path, view: dict[str, Any]) -> None:
    """Replace this worker's view file atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{view['pid']}.json.tmp"
    tmp.write_text(json.dumps(view, sort_keys=True))
    tmp.replace(directory / f"{view['pid']}.json")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_views(directory: Path) -> list[dict[str, Any]]:
    """The views of the live workers, by pid; files of workers that are gone are removed."""
    views = []
    if not directory.is_dir():
        return views
    for path in directory.glob("*.json"):
        try:
            pid = int(path.stem)
            view = json.loads(path.read_text())
        except (ValueError, OSError):
            continue
        if not _alive(pid):
            path.unlink(missing_ok=True)
            continue
        views.append(view)
    return sorted(views, key=lambda v: v["pid"])


#: The errors a bad policy or sections config raises while loading.
_POLICY_ERRORS = (BanditsError, HeuristicsError, ServiceError, OSError, ValueError)


def _step(key: str, func, *args):
    """`func(*args)`, its errors raised as `LoadError` naming `key`."""
    try:
        return func(*args)
    except LoadError:
        raise
    except _POLICY_ERRORS as exc:
        raise LoadError(key, str(exc)) from None


def _parse(spec: str, sections: SectionsConfig) -> KnobPolicy | str:
    """`bandits.replay.parse_policy`, with a shipped version loaded directly: the replay module brings the
    off-policy estimators (LightGBM, scikit-learn), seconds of imports the check of a version need not pay."""
    if is_version_dir(spec):
        return ShippedPolicy.load(Path(spec).parents[1], sections, version=Path(spec).name)
    from bandits.replay import parse_policy

    return parse_policy(spec, sections)


def load_policy(spec: str, sections: SectionsConfig, explore: float = 0.0) -> KnobPolicy:
    """The knob policy of `spec` (`bandits.replay.parse_policy`), mixed with `explore` uniform exploration
    when it is > 0; `LoadError` naming ``policy`` if it cannot be served."""
    policy = _step("policy", _parse, spec, sections)
    if not isinstance(policy, KnobPolicy):
        raise LoadError("policy", f"{spec!r} is not a policy the service can serve")
    return ExploringPolicy(policy, explore) if explore > 0 else policy


def build_policy(config: ServiceConfig, on_step: Callable[[str], None] | None = None) -> KnobPolicy:
    """The knob policy `config` serves, loaded and smoke-tested alone (a followed policy version changes
    nothing else of the pipeline): each section's distribution at one context must be finite and sum to 1.
    Raises `LoadError` naming the key at fault."""
    if on_step is not None:
        on_step("sections_config")
    sections = _step("sections_config", SectionsConfig.load, config.sections_config)
    if on_step is not None:
        on_step("policy")
    spec, _ = _step("policy", policy_source, config)
    policy = load_policy(spec, sections, config.policy_explore)
    names = np.array([s.name for s in sections])
    n = len(names)
    context = PolicyContext(
        section=names,
        segment=np.array(["smoke"] * n),
        device=np.array(["smoke"] * n),
        hour=np.zeros(n, dtype=np.int64),
        fresh_share=np.full(n, 0.5),
        category_entropy=np.ones(n),
    )
    try:
        probs = _step("policy", policy.distribution, context)
        for name, p in zip(names.tolist(), probs, strict=True):
            if len(p) != len(sections[name].arms) or not np.isfinite(p).all() or abs(p.sum() - 1) > 1e-6:
                problem = f"section {name!r}: the smoke distribution is no distribution over its arms"
                raise LoadError("policy", problem)
    except LoadError:
        close = getattr(policy, "close", None)
        if callable(close):
            close()
        raise
    return policy


class PolicyFollower:
    """A daemon thread that calls `check` every `interval` seconds until `stop`."""

    def __init__(self, check: Callable[[], object], interval: float) -> None:
        self.check = check
        self.interval = float(interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sectionrank-policy-follower", daemon=True)

    def start(self) -> PolicyFollower:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except (OSError, ValueError, RuntimeError):
                # The check refuses bad versions itself; anything else (a directory gone for a while) is
                # logged, and the next check tries again.
                LOGGER.exception("policy follower: check failed; trying again in %g s", self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5.0)
