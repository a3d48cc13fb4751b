"""`sectionrank export`: a decision log's decisions, joined with their feedback, as a Parquet file."""

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
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Parquet file to write (replaced if it exists).",
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
    help="Decisions read and written at a time (one Parquet row group each).",
)
def export_command(
    log_path: Path,
    out: Path,
    section: str | None,
    wait_seconds: float | None,
    chunk_size: int,
) -> None:
    """Export logged decisions joined with their feedback to Parquet, one row per decision.

    Candidates, shown items, arm probabilities, clicks and conversions are list columns; context, knobs and
    model versions are JSON text. Decisions without feedback have has_feedback false and empty clicks.

    \b
    Example:
        sectionrank export --log decisions.db --out decisions.parquet --section discover
    """
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
