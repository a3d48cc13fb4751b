"""A reload's candidate pipeline, built and smoke-tested in a separate process before a worker touches it.

A model file whose hash matches can still crash the process that loads it (a truncated LightGBM text model
makes the loader read out of bounds and abort), and a loader can hang (a file on a stalled mount). So
`validate` runs ``python -m service.reload_check`` with the candidate config on its stdin; the child runs
`service.state.build_pipeline` (every artifact loaded, each contract and slot design checked, a smoke
prediction in every section) and reports each config key before its step, then the result. The parent maps:

- the child's own `LoadError` -> the same `LoadError`;
- a child that dies (signal, abort, any exit without a result) -> `LoadError` naming the key it was loading;
- a child still running after `timeout` seconds -> killed, `LoadError` naming the key it was loading.

The child is a new interpreter (``fork`` + ``exec``), so nothing of the worker's LightGBM or VW state crosses
into it. It writes nothing: the decision log is not opened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from service.config import ServiceConfig
from service.errors import LoadError

#: Lines of the child's stdout that carry the protocol start with this (libraries may print too).
PREFIX = "sectionrank-reload-check "


def config_payload(config: ServiceConfig) -> dict[str, Any]:
    """The config keys the child needs to rebuild `config` (absolute paths; no admin token)."""
    data = config.public()
    data["sections_config"] = data["sections_config"] or ""
    return data


def validate(config: ServiceConfig, *, timeout: float, policy_only: bool = False) -> float:
    """Build `config`'s pipeline in a child process; returns the seconds it took, or raises `LoadError`.

    With `policy_only` the child loads and smoke-tests only the knob policy (`service.follow.build_policy`):
    what a followed policy version changes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        # -P: the worker's working directory is not put on sys.path (it may hold another `service/`).
        [sys.executable, "-P", "-m", "service.reload_check"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    payload = json.dumps({**config_payload(config), "policy_only": policy_only}).encode()
    try:
        out, err = process.communicate(payload, timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        hung = True
    key, result = "models", None
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(PREFIX):
            message = json.loads(line[len(PREFIX) :])
            key = message.get("step", key)
            result = message.get("result", result)
    if hung:
        raise LoadError(key, f"loading did not finish within {timeout:g} s in the validating process")
    if isinstance(result, Mapping) and result.get("ok"):
        return float(result.get("seconds", 0.0))
    if isinstance(result, Mapping) and "key" in result:
        raise LoadError(str(result["key"]), str(result["problem"]))
    tail = err.decode(errors="replace").strip().splitlines()
    why = f"signal {-process.returncode}" if process.returncode < 0 else f"exit status {process.returncode}"
    detail = f": {tail[-1][:300]}" if tail else ""
    raise LoadError(key, f"the validating process died while loading it ({why}){detail}")


def _report(message: Mapping[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> int:
    import time

    started = time.perf_counter()
    data = json.loads(sys.stdin.buffer.read())
    policy_only = bool(data.pop("policy_only", False))
    try:
        config = ServiceConfig.from_dict(data, environ={})
        if policy_only:
            # Without the rankers' imports (LightGBM, lleaves): a new policy version changes nothing else.
            from service.follow import build_policy

            policy = build_policy(config, on_step=lambda key: _report({"step": key}))
        else:
            from service.loading import build_pipeline

            policy = build_pipeline(config, on_step=lambda key: _report({"step": key})).pipeline.policy
    except LoadError as exc:
        _report({"result": {"key": exc.key, "problem": exc.problem}})
        return 0
    close = getattr(policy, "close", None)
    if callable(close):
        close()
    _report({"result": {"ok": True, "seconds": round(time.perf_counter() - started, 3)}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
