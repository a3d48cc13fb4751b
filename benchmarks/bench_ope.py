"""Off-policy evaluation speed: IPS, SNIPS and DR with 95% intervals over a large synthetic log, in one
process and through the command line.

`run(quick)` returns a markdown section. Full run: 1,000,000 logged decisions, 10 arms, 10 context features,
200 bootstrap resamples; `evaluate` timed 7 times and each estimator alone 3 times (medians, with the
fastest and slowest run), and ``sectionrank replay`` on the same log as a Parquet file 3 times, each a fresh
process. Quick run: 100,000 decisions, fewer runs. The target: IPS, SNIPS and DR with intervals in under
1.5 s in one process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bandits.ope import DoublyRobust, InverseProbabilityWeighting, LoggedBandit, SelfNormalizedIPS, evaluate

N_ACTIONS = 10
N_FEATURES = 10
N_BOOTSTRAP = 200
TARGET_SECONDS = 1.5


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def make_log(n: int, seed: int = 0) -> tuple[LoggedBandit, np.ndarray, float]:
    """A synthetic log of n rows, the target's (n, A) distribution, and the target's true value."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    theta = rng.normal(scale=0.3, size=(N_FEATURES, N_ACTIONS))
    q = 1.0 / (1.0 + np.exp(-(x @ theta - 1.5)))  # click probabilities (n, A)
    logging = 0.7 * _softmax(x @ rng.normal(scale=0.5, size=(N_FEATURES, N_ACTIONS))) + 0.3 / N_ACTIONS
    target = _softmax(2.0 * (x @ theta))
    action = (rng.random(n)[:, None] > np.cumsum(logging, axis=1)).sum(axis=1).clip(max=N_ACTIONS - 1)
    reward = (rng.random(n) < q[np.arange(n), action]).astype(np.float64)
    logged = LoggedBandit(
        action=action, reward=reward, pscore=logging[np.arange(n), action], context=x, n_actions=N_ACTIONS
    )
    return logged, target, float((target * q).sum(axis=1).mean())


def _times(fn, repeats: int) -> tuple[np.ndarray, object]:
    """Seconds of `repeats` calls of `fn` after one untimed call, and the last result."""
    result = fn()
    seconds = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        result = fn()
        seconds[i] = time.perf_counter() - start
    return seconds, result


def _spread(seconds: np.ndarray) -> str:
    return f"{np.median(seconds):.2f} ({seconds.min():.2f}–{seconds.max():.2f})"


def _cli_seconds(logged: LoggedBandit, target: np.ndarray, repeats: int) -> tuple[np.ndarray, dict]:
    """Wall seconds of ``sectionrank replay`` on the log as a Parquet file, each run a fresh process."""
    frame = pd.DataFrame(logged.context, columns=[f"x{j}" for j in range(N_FEATURES)])
    frame["action"], frame["reward"], frame["pscore"] = logged.action, logged.reward, logged.pscore
    for a in range(N_ACTIONS):
        frame[f"t{a}"] = target[:, a]
    script = Path(sys.executable).with_name("sectionrank")
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "sectionrank"]
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "log.parquet", Path(tmp) / "replay.json"
        frame.to_parquet(path)
        argv = [*command, "replay", "--log", str(path), "--target-cols", "t", "--estimators", "ips,snips,dr"]
        argv += ["--n-actions", str(N_ACTIONS), "--out", str(out)]
        seconds, _ = _times(lambda: subprocess.run(argv, check=True, capture_output=True), repeats)
        rows = json.loads(out.read_text())["rows"]
    return seconds, {r["estimator"]: r for r in rows}


def run(quick: bool) -> str:
    n = 100_000 if quick else 1_000_000
    repeats, single, cli_repeats = (2, 1, 1) if quick else (7, 3, 3)
    logged, target, truth = make_log(n)
    estimators = ("ips", "snips", "dr")
    with_ci, table = _times(
        lambda: evaluate(logged, target, estimators=estimators, n_bootstrap=N_BOOTSTRAP, seed=0), repeats
    )
    points, _ = _times(lambda: evaluate(logged, target, estimators=estimators, n_bootstrap=0), repeats)
    alone = []
    for estimator in (InverseProbabilityWeighting(), SelfNormalizedIPS(), DoublyRobust()):
        seconds, _ = _times(
            lambda est=estimator: est.estimate_interval(logged, target, n_bootstrap=N_BOOTSTRAP, seed=0),
            single,
        )
        alone.append((estimator.name, seconds))
    cli, cli_rows = _cli_seconds(logged, target, cli_repeats)
    verdict = "under" if np.median(with_ci) < TARGET_SECONDS else "OVER"
    lines = [
        "## Off-policy evaluation",
        "",
        f"{n:,} logged decisions, {N_ACTIONS} arms, {N_FEATURES} context features, stochastic logging and "
        "target policies (the target's whole distribution given). Every time includes input validation; DR's "
        "includes 3-fold cross-fitting of the default ridge reward model (fitted once). Intervals are 95% "
        f"percentile bootstrap intervals from {N_BOOTSTRAP} resamples of the per-row values (rows dealt into "
        "32,768 buckets above that many rows; see docs/replay.md). Seconds: median (fastest–slowest) of "
        f"{repeats} runs for `evaluate`, {single} for each estimator alone, {cli_repeats} for the command "
        f"line. True value of the target: {truth:.4f}.",
        "",
        "| IPS + SNIPS + DR in one `evaluate` | seconds |",
        "| --- | ---: |",
        f"| with 95% intervals | {_spread(with_ci)} |",
        f"| point estimates only (`n_bootstrap=0`) | {_spread(points)} |",
        "",
        f"Target: under {TARGET_SECONDS} s with intervals; this run's median is {verdict} it.",
        "",
        "| estimator | estimate | 95% interval | `estimate_interval` alone, seconds |",
        "| --- | ---: | --- | ---: |",
    ]
    for (name, seconds), row in zip(alone, table.itertuples(), strict=True):
        lines.append(
            f"| {name} | {row.value:.4f} | [{row.ci_low:.4f}, {row.ci_high:.4f}] | {_spread(seconds)} |"
        )
    lines += [
        "",
        f"`sectionrank replay --log log.parquet --target-cols t --estimators ips,snips,dr --out replay.json`"
        f" on the same {n:,} rows as a Parquet file (10 context and 10 target columns), end to end in a "
        f"fresh process (interpreter start, imports, reading, validation, estimates, intervals, JSON): "
        f"{_spread(cli)} s. Its DR: {cli_rows['dr']['value']:.4f}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
