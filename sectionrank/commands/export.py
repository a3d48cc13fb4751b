"""`sectionrank export`: a decision log as a Parquet file, or shipped into a Parquet dataset of logs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click
import pandas as pd

from bandits.log import DecisionLog
from bandits.log_export import export_parquet
from sectionrank.progress import progress


def _progress(chunks: Iterable[pd.DataFrame], total: int) -> Iterable[pd.DataFrame]:
    return progress(chunks, total=total, desc="export")


@click.command("export")
@click.option(
    "--log",
    "log_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The decision log (SQLite) to read.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write (replaced if it exists).",
)
@click.option(
    "--dataset",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Instead of --out: ship the decisions and feedback not shipped yet into this Parquet dataset "
    "(hive-partitioned by date and host; created if missing).",
)
@click.option(
    "--host",
    default=None,
    help="With --dataset: the host partition this log ships as. Default: this machine's host name.",
)
@click.option("--section", default=None, help="Export only this section's decisions.")
@click.option(
    "--wait-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Join only feedback that arrived within this many seconds of its decision. Default: all feedback.",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Decisions read and written at a time (one Parquet row group, or dataset file, each).",
)
def export_command(
    log_path: Path,
    out: Path | None,
    dataset: Path | None,
    host: str | None,
    section: str | None,
    wait_seconds: float | None,
    chunk_size: int,
) -> None:
    """Export logged decisions joined with their feedback to Parquet, one row per decision.

    Candidates, shown items, arm probabilities, clicks and conversions are list columns; context, knobs and
    model versions are JSON text. Decisions without feedback have has_feedback false and empty clicks.

    With --dataset, ships the log into a Parquet dataset of logs instead: the decisions and the feedback
    stored since the last run (the host's watermark in the dataset), each under date=YYYY-MM-DD/host=HOST.
    Re-running ships nothing twice; every job that takes --log reads the dataset (docs/scaling.md).

    \b
    Example:
        sectionrank export --log decisions.db --out decisions.parquet --section discover
        sectionrank export --log decisions.db --dataset /data/decision-logs --host web-1
    """
    if (out is None) == (dataset is None):
        raise click.UsageError("give one of --out FILE or --dataset DIR")
    if dataset is not None:
        if section is not None or wait_seconds is not None:
            raise click.UsageError(
                "--section and --wait-seconds apply to --out; a dataset ships the whole log, and its "
                "readers join feedback with their own wait window"
            )
        from bandits.dataset import ship_log

        with DecisionLog.open(log_path) as log:
            shipped = ship_log(log, dataset, host=host, chunk_size=chunk_size)
        mark = shipped.watermark
        click.echo(
            f"Shipped {shipped.decisions:,} decisions and {shipped.feedback:,} feedback rows of {log_path} "
            f"as host {shipped.host} to {dataset} ({shipped.files} files); shipped up to decision "
            f"{mark.decisions:,}, feedback {mark.feedback:,}"
        )
        return
    with DecisionLog.open(log_path) as log:
        summary = export_parquet(
            log,
            out,
            section=section,
            wait_seconds=wait_seconds,
            chunk_size=chunk_size,
            progress=_progress,
        )
    click.echo(f"Wrote {summary.rows} decisions ({summary.with_feedback} with feedback) to {summary.path}")
