"""`sectionrank simulate`: log simulated traffic of a world, and print what was logged."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import click

from bandits.log import DecisionLog
from bandits.log_summary import SectionSummary, summarize_log
from heuristics import SectionsConfig
from sectionrank.commands.options import config_option, world_option
from sectionrank.progress import progress
from simulator.run import simulate
from simulator.world import World
from simulator.world_config import WorldConfig


def print_summary(summaries: dict[str, SectionSummary], sections: SectionsConfig, top_positions: int = 10):
    """Per section: requests, CTR, clicks by position and the share of each arm."""
    for name, s in summaries.items():
        click.echo(
            f"\n[{name}] {s.requests:,} requests, {s.clicks:,} clicks "
            f"(CTR {s.ctr:.2%} per shown slot, {s.clicks_per_request:.3f} per request), "
            f"{s.conversions:,} conversions, revenue {s.revenue:,.0f}"
        )
        by_position = s.clicks_by_position[:top_positions]
        share = by_position / max(s.clicks, 1)
        click.echo(
            "  clicks by position: "
            + "  ".join(
                f"{p + 1}:{c:,} ({r:.0%})" for p, (c, r) in enumerate(zip(by_position, share, strict=True))
            )
        )
        arms = {arm.id: arm for arm in sections[name].arms} if name in sections.sections else {}
        counts = sorted(s.arm_counts.items(), key=lambda kv: -kv[1])
        shown = ", ".join(f"{arms[a].index if a in arms else a}:{c / s.requests:.1%}" for a, c in counts[:8])
        more = f" (+{len(counts) - 8} more)" if len(counts) > 8 else ""
        click.echo(f"  arm shares (index:share): {shown}{more}")


@click.command("simulate")
@world_option
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seeds the world and the logging policy."
)
@click.option(
    "--exploration",
    type=click.Choice(["uniform", "epsilon"]),
    default="uniform",
    show_default=True,
    help="How the logging policy draws each request's knob arm.",
)
@click.option(
    "--epsilon",
    type=click.FloatRange(0.0, 1.0),
    default=0.2,
    show_default=True,
    help="With --exploration epsilon: the share of requests that explore.",
)
@config_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for catalog.parquet, users.parquet, log.db and simulation.json.",
)
@click.option(
    "--dataset",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the decisions and feedback straight into this Parquet dataset of logs (partitioned by date "
    "and host) instead of --out/log.db.",
)
@click.option(
    "--host",
    default="sim",
    show_default=True,
    help="With --dataset: the host partition the simulated log is written as.",
)
@click.option("--quiet", is_flag=True, help="Do not print the per-section summary.")
def simulate_command(
    world_ref: str,
    n_requests: int,
    seed: int,
    exploration: str,
    epsilon: float,
    config_path: Path | None,
    out: Path,
    dataset: Path | None,
    host: str,
    quiet: bool,
) -> None:
    """Simulate a world's traffic under an exploring logging policy and write what a real system would log.

    Writes the item catalog and user profiles (Parquet), the decision log with its feedback (SQLite) and a
    run summary (JSON) to --out, then prints per section: requests, CTR, clicks by position and the share
    of each arm. An existing log.db in --out is refused, so nothing logged before is lost. With --dataset
    the log goes straight to Parquet partitions (no SQLite file, whatever the number of requests); a host
    already in the dataset is refused.

    \b
    Example:
        sectionrank simulate --world default --requests 100000 --seed 0 --out runs/sim
        sectionrank simulate --requests 10000000 --out runs/big --dataset runs/big/dataset
    """
    sections = SectionsConfig.load(config_path)
    world_config = WorldConfig.load(world_ref)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "log.db"
    if dataset is None and log_path.exists():
        raise click.ClickException(f"{log_path} already exists; choose another --out or remove it")
    writer = None
    if dataset is not None:
        from bandits.dataset import DatasetWriter

        writer = DatasetWriter(dataset, host)
    world = World.build(world_config, seed)
    world.catalog().to_parquet(out / "catalog.parquet", index=False)
    world.users().to_parquet(out / "users.parquet", index=False)

    with ExitStack() as stack:
        if writer is None:
            log = stack.enter_context(DecisionLog.open(log_path, create=True))
            sink = log.append
        else:
            sink = stack.enter_context(writer).append
        summary = simulate(
            world,
            n_requests,
            seed=seed,
            exploration=exploration,
            epsilon=epsilon,
            sections_config=sections,
            sink=sink,
            progress=lambda chunks: progress(chunks, desc="simulating"),
        )
        if writer is not None:  # the last buffered rows belong to the run's time, as the SQLite log's do
            started = time.perf_counter()
            writer.close()
            summary = replace(summary, seconds=summary.seconds + time.perf_counter() - started)
        run = {
            "world": world_ref,
            "seed": seed,
            "requests": summary.requests,
            "clicks": summary.clicks,
            "conversions": summary.conversions,
            "revenue": summary.revenue,
            "by_section": dict(summary.by_section),
            "exploration": exploration,
            "epsilon": epsilon if exploration == "epsilon" else None,
            "seconds": summary.seconds,
        }
        (out / "simulation.json").write_text(json.dumps(run, indent=2))
        click.echo(
            f"Simulated {summary.requests:,} requests in {summary.seconds:.1f} s "
            f"({summary.requests_per_second:,.0f}/s), log written to {dataset or log_path}"
        )
        if not quiet:
            if writer is not None:
                from bandits.dataset_read import LogDataset

                log = LogDataset.open(writer.root)
            print_summary(summarize_log(log), sections)


__all__ = ["print_summary", "simulate_command"]
