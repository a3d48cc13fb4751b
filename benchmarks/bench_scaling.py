"""Scaling out: `simulate --dataset`, `replay --dask` over a big dataset, and `train` in one process against
`train --dask local:2` on the same log.

Each command runs as the user runs it (``sectionrank ...`` in a subprocess); its wall time is measured, and
its peak memory is the largest total resident memory of the command's process tree (the command, and for
``--dask local:2`` the scheduler and both workers), sampled every 0.1 s.

The full run simulates `REQUESTS` requests (10 million by default; ``SECTIONRANK_BENCH_SCALING_REQUESTS``
sets another number, and the section says which was run).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REQUESTS = int(os.environ.get("SECTIONRANK_BENCH_SCALING_REQUESTS", "10000000"))
TRAIN_REQUESTS = 100_000
#: `simulate` into SQLite and into a dataset are compared at this many requests (or the run's, if fewer).
COMPARE_REQUESTS = 1_000_000
POLICIES = ("uniform", "default", "epsilon:0.1")
CLI = str(Path(sys.executable).with_name("sectionrank"))


def _measured(args: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak resident bytes of the process tree, stdout) of ``sectionrank ARGS``."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ}
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
                total = 0
                for p in tree:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                peak = max(peak, total)
            except psutil.Error:
                pass
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"sectionrank {' '.join(args)} exited with {process.returncode}: {out[-2000:]}")
    return time.perf_counter() - started, peak, out


def _trained(out: str) -> tuple[int, float, float]:
    """(rows, fit seconds, rows/s) from the train command's first line."""
    m = re.search(r"Trained \w+ on ([\d,]+) rows in ([\d.]+) s \(([\d,]+) rows/s", out)
    if m is None:
        raise RuntimeError(f"unexpected train output: {out[:500]}")
    return int(m.group(1).replace(",", "")), float(m.group(2)), float(m.group(3).replace(",", ""))


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def _simulated_rate(out: str) -> float:
    """Requests per second the simulate command reports (its simulation, world building excluded)."""
    m = re.search(r"Simulated [\d,]+ requests in [\d.]+ s \(([\d,]+)/s\)", out)
    if m is None:
        raise RuntimeError(f"unexpected simulate output: {out[:500]}")
    return float(m.group(1).replace(",", ""))


def run(quick: bool) -> str:
    n = 20_000 if quick else REQUESTS
    n_train = 5_000 if quick else TRAIN_REQUESTS
    n_compare = min(n, COMPARE_REQUESTS)
    lines = ["## Scaling out: Parquet datasets and Dask (`bench_scaling`)", ""]
    loads = [_load()]
    with tempfile.TemporaryDirectory(prefix="sectionrank-bench-scaling-") as tmp:
        root = Path(tmp)
        rates = {}
        for name, extra in (("SQLite", []), ("dataset", ["--dataset", str(root / "cmp-dataset" / "ds")])):
            _, _, out = _measured(
                ["simulate", "--requests", str(n_compare), "--seed", "0", "--out", str(root / f"cmp-{name}"),
                 *extra, "--quiet"]
            )  # fmt: skip
            rates[name] = _simulated_rate(out)
            shutil.rmtree(root / f"cmp-{name}")
        loads.append(_load())
        sim_s, sim_peak, sim_out = _measured(
            ["simulate", "--requests", str(n), "--seed", "0", "--out", str(root / "sim"), "--dataset",
             str(root / "sim" / "ds"), "--quiet"]
        )  # fmt: skip
        loads.append(_load())
        files = list((root / "sim" / "ds").rglob("*.parquet"))
        size = sum(f.stat().st_size for f in files)
        replay_args = ["replay", "--log", str(root / "sim" / "ds"), "--dask", "local:2"]
        for policy in POLICIES:
            replay_args += ["--policy", policy]
        replay_s, replay_peak, _ = _measured([*replay_args, "--out", str(root / "replay.json")])
        loads.append(_load())
        rows = json.loads((root / "replay.json").read_text())["rows"]
        decisions = int(next(r["n"] for r in rows if r["group"] == "overall"))

        _measured(
            ["simulate", "--requests", str(n_train), "--seed", "1", "--out", str(root / "train"),
             "--dataset", str(root / "train" / "ds"), "--quiet"]
        )  # fmt: skip
        train = ["train", "--design", "base", "--log", str(root / "train" / "ds")]
        one_s, one_peak, one_out = _measured([*train, "--out", str(root / "m1")])
        dask_s, dask_peak, dask_out = _measured([*train, "--out", str(root / "m2"), "--dask", "local:2"])
        one, many = _trained(one_out), _trained(dask_out)
        loads.append(_load())

    lines += [
        f"`simulate` of {n_compare:,} requests (default world, seed 0), as the command reports its rate: "
        f"into SQLite {rates['SQLite']:,.0f} requests/s, into a dataset {rates['dataset']:,.0f} requests/s "
        f"(the dataset at **{rates['SQLite'] / rates['dataset']:.2f}x** the SQLite time).",
        "",
        f"Default world, seed 0. `simulate --dataset` of {n:,} requests writes {len(files):,} Parquet files "
        f"({size / 2**20:,.0f} MiB); `replay --dask local:2` over those {decisions:,} decisions estimates "
        f"{len(POLICIES)} policies ({', '.join(POLICIES)}) with IPS, SNIPS and DR (a ridge reward model "
        "on a sample of up to 200,000 rows), each with its interval, per section and overall. Wall time of "
        "the whole command, cluster start included; peak memory of the whole process tree (client, "
        "scheduler, 2 workers).",
        "",
        "| command | wall s | per second | peak memory |",
        "| --- | ---: | ---: | ---: |",
        f"| `simulate --requests {n:,} --dataset` | {sim_s:,.1f} | {n / sim_s:,.0f} requests "
        f"({_simulated_rate(sim_out):,.0f} simulating) | "
        f"{sim_peak / 2**20:,.0f} MiB |",
        f"| `replay --dask local:2` (ips, snips, dr) | {replay_s:,.1f} | {decisions / replay_s:,.0f} "
        f"decisions | {replay_peak / 2**20:,.0f} MiB |",
        "",
        f"Training the base design on one {n_train:,}-request dataset (the shipped ranker.toml: 3 "
        "candidate `num_leaves`, up to 300 rounds). *rows/s* is training rows over the boosting time "
        "(LightGBM in one process stops early; its Dask interface boosts every round and is cut "
        "afterwards); *wall s* is the whole command (reading, labels, features, evaluation; the cluster's "
        "start for Dask).",
        "",
        "| train | rows | boosting s | rows/s | wall s | peak memory |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| one process | {one[0]:,} | {one[1]:,.1f} | {one[2]:,.0f} | {one_s:,.1f} | "
        f"{one_peak / 2**20:,.0f} MiB |",
        f"| `--dask local:2` | {many[0]:,} | {many[1]:,.1f} | {many[2]:,.0f} | {dask_s:,.1f} | "
        f"{dask_peak / 2**20:,.0f} MiB |",
        "",
        "Load average (1 / 5 / 15 min) of the machine, shared with other work: at the start "
        f"{loads[0]}, after the comparison {loads[1]}, after the big simulation {loads[2]}, after the "
        f"replay {loads[3]}, at the end {loads[4]}.",
    ]
    return "\n".join(lines)
