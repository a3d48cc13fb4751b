"""Benchmark: how long the `sectionrank` command takes to answer ``--version`` and ``--help``.

Each run starts a fresh process of the installed console script (the ``sectionrank`` executable beside the
running Python; ``python -m sectionrank`` when there is none) and waits for it to exit, so a figure is the
whole wall time a user waits: the interpreter's start, the imports and click. The bare interpreter's start
(``python -c pass``) is measured the same way, as the floor. The goal is a median under 0.3 s: the command
group imports no command, and no library, for either (sectionrank/cli.py).

``quick`` runs each case 5 times instead of 20: a smoke test, not numbers to quote.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import markdown_table

#: The median wall time `--version` and `--help` should stay under, in seconds.
TARGET_SECONDS = 0.3


def command() -> list[str]:
    """The installed `sectionrank` console script, or ``python -m sectionrank`` without one."""
    script = Path(sys.executable).with_name("sectionrank")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sectionrank"]


def wall_times(argv: list[str], repeats: int) -> np.ndarray:
    """Seconds (repeats,) from starting `argv` to its exit, after one untimed run."""
    subprocess.run(argv, check=True, capture_output=True)
    seconds = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        seconds[i] = time.perf_counter() - start
    return seconds


def run(quick: bool = False) -> str:
    repeats = 5 if quick else 20
    cases = {
        "`python -c pass` (the floor)": [sys.executable, "-c", "pass"],
        "`sectionrank --version`": [*command(), "--version"],
        "`sectionrank --help`": [*command(), "--help"],
    }
    rows = []
    for label, argv in cases.items():
        seconds = wall_times(argv, repeats)
        median = float(np.median(seconds))
        met = "" if label.startswith("`python") else f"{'yes' if median < TARGET_SECONDS else 'no'}"
        rows.append(
            [
                label,
                f"{repeats}",
                f"{median:.3f}",
                f"{seconds.min():.3f}",
                f"{seconds.max():.3f}",
                f"{np.percentile(seconds, 75) - np.percentile(seconds, 25):.3f}",
                met,
            ]
        )
    return "\n\n".join(
        [
            "## Command line start",
            f"Wall time of a fresh process, start to exit, {repeats} runs each after one untimed run, in "
            f"seconds; the target is a median under {TARGET_SECONDS:g} s for `--version` and `--help`, which "
            "import no command and no library (commands load lazily, sectionrank/cli.py).",
            markdown_table(
                ["command", "runs", "median", "min", "max", "interquartile range", "under target"], rows
            ),
        ]
    )
