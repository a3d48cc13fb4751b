"""`sectionrank live`: simulated users over HTTP, against a running service."""

from __future__ import annotations

from pathlib import Path

import click

from sectionrank.commands.options import world_option


@click.command("live")
@world_option
@click.option("--url", required=True, help="The running service, http://HOST:PORT.")
@click.option("--requests", "n_requests", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=50.0,
    show_default=True,
    help="Requests sent per second (0: as fast as the service answers).",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seeds the draws.")
@click.option(
    "--world-seed",
    type=click.IntRange(min=0),
    default=None,
    help="The world's seed, as simulated for the service's store. Default: --seed.",
)
@click.option("--connections", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--feedback-delay",
    type=click.FloatRange(min=0),
    default=None,
    help="Real seconds from a slate to its feedback. Default: the world's requests.feedback_delay_s.",
)
@click.option(
    "--window", type=click.IntRange(min=1), default=500, show_default=True, help="Requests per series point."
)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
def live_command(
    world_ref: str,
    url: str,
    n_requests: int,
    rate: float,
    seed: int,
    world_seed: int | None,
    connections: int,
    feedback_delay: float | None,
    window: int,
    out: Path,
) -> None:
    """Drive a running service with a world's simulated users over HTTP, and record the value it serves.

    Sends the world's requests to POST /v1/rerank at --rate per second over --connections keep-alive
    connections, draws clicks on each returned slate from the world's click model, posts them to
    POST /v1/feedback after the delay, and records each slate's exact expected clicks. Writes
    records.parquet, series.parquet (value per window, section and variant), summary.json and value.png
    to --out, and prints the value per section in the first and last quarter of the run. The service's
    store must hold this world's catalog and users (`sectionrank simulate --world W --seed S`).

    \b
    Example:
        sectionrank live --world context_flip --url http://127.0.0.1:8000 --rate 100 --out runs/live
    """
    from simulator.live import LiveSettings, run_live
    from simulator.live_report import ALL, quarter_change, write_live
    from simulator.world import World
    from simulator.world_config import WorldConfig

    settings = LiveSettings(
        url=url,
        requests=n_requests,
        rate=rate,
        seed=seed,
        connections=connections,
        feedback_delay=feedback_delay,
    )
    world = World.build(WorldConfig.load(world_ref), seed if world_seed is None else world_seed)
    done = 0
    step = max(n_requests // 10, 1)

    def progress(n: int) -> None:
        nonlocal done
        before, done = done, done + n
        if done // step > before // step or done == n_requests:
            click.echo(f"  {done:,} / {n_requests:,} requests", err=True)

    result = run_live(world, settings, progress=progress)
    paths = write_live(result, out, window=window)
    counts = result.counts
    click.echo(
        f"Sent {counts.sent:,} requests in {counts.seconds:.1f} s ({counts.requests_per_second:.1f}/s): "
        f"{counts.served:,} served, {counts.failed:,} failed, {counts.server_errors} 5xx; "
        f"feedback {dict(counts.feedback_statuses)}, {counts.feedback_retries} resent after 404"
    )
    click.echo(
        "Exact expected clicks per request, first quarter -> last quarter (95% interval of the change):"
    )
    for section, change in quarter_change(result.records).items():
        name = "all sections" if section == ALL else section
        click.echo(
            f"  {name:<18} {change.first:7.4f} -> {change.last:7.4f}  "
            f"{change.difference:+.4f} [{change.low:+.4f}, {change.high:+.4f}]  "
            f"(n {change.n_first:,} / {change.n_last:,})"
        )
    for path in paths.values():
        click.echo(f"Wrote {path}")
    if counts.failed:
        raise click.ClickException(
            f"{counts.failed:,} of {counts.sent:,} rerank requests were not answered 200"
        )
