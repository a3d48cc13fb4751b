"""`sectionrank experiment-report`: the A/B experiments of a decision log, variant against control."""

from __future__ import annotations

from pathlib import Path

import click

from bandits.dataset_read import LogDataset, open_log
from bandits.experiment_report import write_report
from bandits.experiment_stats import analyse, user_totals, user_totals_from_log
from sectionrank.commands.options import log_option


@click.command("experiment-report")
@log_option("The decision log (SQLite), or a Parquet dataset of logs (a directory, glob or URL).")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for report.md, results.json and experiment-NAME.png (created).",
)
@click.option(
    "--control",
    default=None,
    help="The variant the others are compared with. Default: each experiment's first variant by name.",
)
@click.option(
    "--wait-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Count only feedback that arrived within this many seconds of its decision. Default: all.",
)
def experiment_report_command(
    log_path: Path | str, out: Path, control: str | None, wait_seconds: float | None
) -> None:
    """Compare the variants of the log's A/B experiments per section and overall, with intervals.

    Reads the decisions served in an experiment (their logged variant, EXPERIMENT/VARIANT) with their
    feedback, and writes per experiment: users and requests per variant and section, clicks (and
    conversions, revenue where the log has them) per request, each variant's difference from the control
    with a 95% interval over users (the randomisation unit: delta method, Welch-Satterthwaite df), a
    per-section reversal check where the overall difference is significant, and a plot.

    \b
    Example:
        sectionrank experiment-report --log decisions.db --out ab-report
    """
    log = open_log(log_path)
    try:
        if isinstance(log, LogDataset):
            totals = user_totals(log.joined(wait_seconds))
        else:
            totals = user_totals_from_log(log, wait_seconds=wait_seconds)
    finally:
        log.close()
    analyses = analyse(totals, control=control)
    files = write_report(analyses, out, source=str(log_path), wait_seconds=wait_seconds)
    for analysis in analyses:
        click.echo(f"experiment {analysis.name} (control {analysis.control}):")
        for d in analysis.differences:
            if d.metric != "clicks":
                continue
            flag = f"  [{d.reversal}]" if d.reversal else ""
            click.echo(
                f"  {d.section:<18} {d.variant}: {d.difference:+.4f} clicks/request "
                f"[{d.low:+.4f}, {d.high:+.4f}] {d.verdict}{flag}"
            )
    if not analyses:
        click.echo("no decision in the log was served in an experiment")
    click.echo(f"wrote {files.report}, {files.results} and {len(files.plots)} plot(s)")
