"""`sectionrank compare`: every design on the same simulated requests, over seeds, with a report."""

from __future__ import annotations

from pathlib import Path

import click

from heuristics import SectionsConfig
from sectionrank.progress import progress_by_group
from simulator.compare_settings import FULL, QUICK


@click.command("compare")
@click.option(
    "--world",
    "world_ref",
    default="default",
    show_default=True,
    help="World name (under simulator/worlds/) or a world TOML file.",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    help="Number of seeds (0..N-1); each builds its own world, log and evaluation requests.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory for report.html, report.md and results.json.",
)
@click.option(
    "--quick",
    is_flag=True,
    help=f"A smaller log ({QUICK.log_requests:,}) and fewer evaluation requests "
    f"({QUICK.eval_requests:,}) per seed; the same number of seeds.",
)
@click.option(
    "--requests",
    "log_requests",
    type=click.IntRange(min=200),
    default=None,
    help=f"Logged requests per seed [default: {FULL.log_requests:,}; {QUICK.log_requests:,} with --quick].",
)
@click.option(
    "--eval-requests",
    type=click.IntRange(min=10),
    default=None,
    help=f"Fresh evaluation requests per seed [default: {FULL.eval_requests:,}; {QUICK.eval_requests:,} with "
    "--quick].",
)
@click.option(
    "--knob-requests",
    type=click.IntRange(min=30),
    default=None,
    help="Requests of the knob window per seed, served by the base ranker: the knob policies learn on its "
    f"uniform first half, the gate decides on its canary second half [default: {FULL.knob_requests:,}; "
    f"{QUICK.knob_requests:,} with --quick].",
)
@click.option(
    "--curve-section",
    default=None,
    help="Section of the cross-learning curve [default: the world's section with the least traffic].",
)
@click.option(
    "--feature-check",
    "feature_check",
    default=None,
    metavar="FEATURE[,FEATURE...]",
    help="Section-context features to check (question 7): the consolidated and carrying sections' "
    f"independent models retrained without each [default: none; {','.join(QUICK.feature_check)} with "
    "--quick]; 'none' checks none.",
)
@click.option(
    "--feature-leak",
    is_flag=True,
    help="Also serve the model with each checked feature computing it in every section (the classic "
    "feature-pipeline bug, injected), and report the check both ways.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes that run the seeds side by side [default: the CPUs this process may use, at most "
    "one per seed]; 1 runs them one after another in this process. The results do not depend on it.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Sections config (TOML). Default: the one shipped with the package.",
)
def compare_command(
    world_ref: str,
    seeds: int,
    out: Path,
    quick: bool,
    log_requests: int | None,
    eval_requests: int | None,
    knob_requests: int | None,
    curve_section: str | None,
    feature_check: str | None,
    feature_leak: bool,
    jobs: int | None,
    config_path: Path | None,
) -> None:
    """Compare the ranker designs and knob policies on a simulated world, and write a report.

    For every seed: simulate an exploring log, train the independent, consolidated and base rankers and the
    bandit on it, then value every strategy exactly on the same fresh requests; --feature-check retrains the
    consolidated model without each named feature and says whether the feature made the sections that never
    see it worse. Writes report.html (with
    plots), report.md and results.json to --out and prints the headline table (clicks per request of each
    strategy, mean ± 95% interval half-width over the seeds), then the verdict: which design to run per
    section and overall, its cost, and the caveats that could change it. The seeds run side by side in
    --jobs worker processes.

    \b
    Example:
        sectionrank compare --world default --seeds 5 --out runs/compare --quick
        sectionrank compare --world default --out runs/fc --quick --feature-check query_match --feature-leak
    """
    # The comparison (LightGBM, VW) and the report (matplotlib) load only when the command runs.
    from simulator.compare import compare, usable_cores, write_outputs
    from simulator.compare_run import STEPS
    from simulator.report import headline_text, verdict_text

    settings = QUICK if quick else FULL
    changes: dict[str, object] = {}
    if log_requests is not None:
        changes["log_requests"] = log_requests
    if eval_requests is not None:
        changes["eval_requests"] = eval_requests
    if knob_requests is not None:
        changes["knob_requests"] = knob_requests
    if curve_section is not None:
        changes["curve_section"] = curve_section
    if feature_check is not None:
        names = [f.strip() for f in feature_check.split(",") if f.strip()]
        changes["feature_check"] = () if names == ["none"] else tuple(names)
    if feature_leak:
        changes["feature_leak"] = True
    settings = settings.with_sizes(**changes)
    sections = SectionsConfig.load(config_path)
    results = compare(
        world_ref,
        seeds=seeds,
        settings=settings,
        sections=sections,
        progress=lambda steps: progress_by_group(
            steps, total=seeds * len(STEPS), group=len(STEPS), desc="comparing", what="seed"
        ),
        jobs=min(usable_cores(), seeds) if jobs is None else jobs,
    )
    paths = write_outputs(results, out)
    click.echo(
        f"Compared {len(results.strategies)} strategies on world {results.world.name!r} over "
        f"{len(results.seeds)} seeds in {results.runtime.seconds:.0f} s; wrote "
        + ", ".join(str(p) for p in paths.values())
    )
    click.echo(
        f"\nExpected clicks per request (mean ± 95% interval half-width over {len(results.seeds)} seeds):"
    )
    click.echo(headline_text(results))
    click.echo("\n" + verdict_text(results))


__all__ = ["compare_command"]
