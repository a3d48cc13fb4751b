"""Run the benchmarks and write docs/BENCHMARKS.md: ``python -m benchmarks.run --out docs/BENCHMARKS.md``.

Every module ``benchmarks/bench_<name>.py`` with a ``run(quick: bool) -> str`` function is a benchmark named
``<name>``; its markdown section goes into the output between ``<!-- bench:<name> -->`` markers. With
``--only NAME`` the other sections already in the output file are kept, so one benchmark can be re-run alone.

Options: ``--out PATH`` (default: print to stdout), ``--only NAME`` (repeatable), ``--quick`` (few repeats,
small sizes: a smoke test, not numbers to quote), ``--list``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import os
import pkgutil
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import benchmarks

PREFIX = "bench_"
TITLE = "# Benchmarks"


def available() -> list[str]:
    """Names of the benchmark modules, sorted."""
    return sorted(
        m.name[len(PREFIX) :] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith(PREFIX)
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """The facts about this machine and its software that the numbers depend on."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": f"{os.cpu_count()} ({usable} usable by this process)",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "lightgbm": _version("lightgbm"),
        "vowpalwabbit": _version("vowpalwabbit"),
        "pandas": _version("pandas"),
        "click": _version("click"),
    }


def _marker(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def existing_sections(text: str) -> dict[str, str]:
    """The benchmark sections of a previously written file, by name."""
    found = re.finditer(r"<!-- bench:([\w-]+) -->\n(.*?)\n<!-- /bench:\1 -->", text, flags=re.S)
    return {m.group(1): m.group(2) for m in found}


def render(sections: dict[str, str], info: dict[str, str], when: str) -> str:
    lines = [
        TITLE,
        "",
        "Written by `make bench` (`python -m benchmarks.run --out docs/BENCHMARKS.md`); do not edit by hand.",
        "Each figure is a median or 99th percentile of many timed calls (`time.perf_counter`), not one run.",
        "Re-run one benchmark with `python -m benchmarks.run --only NAME --out docs/BENCHMARKS.md`.",
        "",
        f"Last run: {when}.",
        "",
        "| machine | |",
        "| --- | --- |",
        *[f"| {key} | {value} |" for key, value in info.items()],
        "",
    ]
    for name in sorted(sections):
        start, end = _marker(name)
        lines += [start, sections[name].strip("\n"), end, ""]
    return "\n".join(lines)


def run_one(name: str, quick: bool, when: str) -> str:
    module = importlib.import_module(f"benchmarks.{PREFIX}{name}")
    started = time.perf_counter()
    body = module.run(quick=quick).strip("\n")
    took = time.perf_counter() - started
    mode = "quick pass (smoke test, not for quoting)" if quick else "full run"
    return f"{body}\n\n_Measured {when}, {mode}, in {took:.1f} s._"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="Markdown file to write (default: stdout).")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="Run only this benchmark (repeatable)."
    )
    parser.add_argument("--quick", action="store_true", help="Few repeats and small sizes: a smoke test.")
    parser.add_argument("--list", action="store_true", help="List the benchmarks and exit.")
    args = parser.parse_args(argv)

    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    selected = args.only or names
    unknown = sorted(set(selected) - set(names))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; available: {', '.join(names)}")

    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections: dict[str, str] = {}
    if args.only and args.out is not None and args.out.exists():
        sections.update({k: v for k, v in existing_sections(args.out.read_text()).items() if k in names})
    for name in selected:
        print(f"benchmark {name} ...", file=sys.stderr, flush=True)
        sections[name] = run_one(name, args.quick, when)
    text = render(sections, machine(), when)
    if args.out is None:
        print(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
