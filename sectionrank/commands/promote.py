"""`sectionrank promote`: the promotion gate; `sectionrank policy show`: what a policy directory serves;
`sectionrank policy rollback`: publish the previous version again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from bandits.base import KnobPolicy
from bandits.log import DecisionLog
from bandits.promote import CONTENDERS, GateSettings, promote
from bandits.replay import parse_policy
from bandits.shipped import read_version, rollback
from heuristics import SectionsConfig
from sectionrank.commands.options import config_option, log_option


def _interval(estimate: Mapping[str, float] | None) -> str:
    if not estimate:
        return "-"
    return f"{estimate['value']:+.4f} [{estimate['low']:+.4f}, {estimate['high']:+.4f}]"


def _time(value: float | None) -> str:
    if value is None:
        return "open"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _source(spec: Mapping[str, Any]) -> str:
    """A section's source in words."""
    if spec["kind"] == "vw":
        return str(spec["model"])
    if spec["kind"] == "uniform":
        return "uniform over the arms"
    if spec["kind"] == "epsilon":
        return f"the default arm, epsilon {spec['epsilon']:g} uniform"
    return f"fixed arm {spec['arm']}"


def _fallback(spec: str, sections: SectionsConfig) -> KnobPolicy:
    policy = parse_policy(spec, sections)
    if not isinstance(policy, KnobPolicy) or spec.startswith("explore:"):
        raise click.BadParameter(
            f"expected uniform, default, epsilon:EPS or fixed:SECTION=ARM, found {spec!r}",
            param_hint="'--fallback'",
        )
    return policy


def echo_version(meta: Mapping[str, Any]) -> None:
    """Print a shipped version: what each section serves, and the gate's window, estimates and margin."""
    decision = meta.get("decision", {})
    window = decision.get("window", {})
    click.echo(f"version {meta['version']} (created {_time(meta.get('created_at'))})")
    if "candidate" in decision:
        click.echo(f"  candidate  {decision['candidate']}")
        click.echo(f"  incumbent  {decision.get('incumbent') or 'none'}")
    if window:
        click.echo(
            f"  window     {_time(window.get('since'))} .. {_time(window.get('until'))}, "
            f"{window.get('decisions', 0):,} decisions; {decision.get('estimator', 'dr').upper()} estimates "
            f"of {window.get('reward', 'reward')} per decision, margin {decision.get('margin', 0.0):g}"
        )
    verdicts = decision.get("sections", {})
    for section, spec in meta["sections"].items():
        what = _source(spec)
        click.echo(f"\n[{section}] ships {spec['from']}: {what}")
        verdict = verdicts.get(section)
        if not verdict:
            continue
        for name in CONTENDERS:
            if name in verdict["estimates"]:
                click.echo(f"  {name:<32} {_interval(verdict['estimates'][name])}")
        differences = verdict.get("differences") or (
            {f"candidate - {verdict['best_alternative']}": verdict["difference"]}
            if verdict.get("difference")
            else {}
        )
        for label, estimate in differences.items():
            click.echo(f"  {label:<32} {_interval(estimate)}")
        click.echo(f"  {verdict['decisions']:,} decisions; {verdict['reason']}")


@click.command("promote")
@log_option("The decision log (SQLite) whose later window values the policies.")
@click.option(
    "--policy-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Policy directory: publishes DIR/versions/<id>/ and the DIR/current pointer.",
)
@click.option(
    "--candidate",
    type=click.Path(path_type=Path),
    default=None,
    help="The learned candidate (a policy-NNNN.vw or a directory: its latest). Default: DIR/candidates.",
)
@config_option
@click.option(
    "--since",
    type=float,
    default=None,
    help="Window start (Unix seconds). Default: the end of the candidate's training window.",
)
@click.option("--until", type=float, default=None, help="Window end, exclusive (Unix seconds).")
@click.option(
    "--margin",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="A challenger (the candidate, the fixed arm) passes when its lower bound against the status quo is "
    "above -margin.",
)
@click.option(
    "--min-decisions",
    type=click.IntRange(min=1),
    default=200,
    show_default=True,
    help="Fewest window decisions per logged section to decide; fewer is refused.",
)
@click.option(
    "--fallback",
    default="uniform",
    show_default=True,
    help="What the service serves while --policy-dir has no version (its policy_fallback: uniform, default, "
    "epsilon:EPS or fixed:SECTION=ARM); until a version exists it is the status quo the gate compares with.",
)
@click.option("--n-bootstrap", type=click.IntRange(min=10), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the folds and the resamples.")
def promote_command(
    log_path: Path,
    policy_dir: Path,
    candidate: Path | None,
    config_path: Path | None,
    since: float | None,
    until: float | None,
    margin: float,
    min_decisions: int,
    fallback: str,
    n_bootstrap: int,
    seed: int,
) -> None:
    """Ship a learned knob policy per section only if a later window of the log says it does not lose.

    Values the candidate, the incumbent (the published version of --policy-dir, or before any version the
    --fallback the service serves meanwhile) and the best logged fixed arm (chosen by DR on the decisions
    before the window) on the window with paired doubly robust estimates and 95% bootstrap intervals. In
    each section a challenger (the candidate, the fixed arm) passes when the lower end of its interval
    against the status quo (the incumbent, or the fallback) is above -margin, and of those that pass the
    higher estimate ships. When none passes the incumbent stays; before any version the fixed arm ships
    unless the window shows it below the fallback. The result is published atomically as the next version
    of --policy-dir, with the decision in its version.json.

    \b
    Example:
        sectionrank learn --log runs/sim/log.db --out runs/policy/candidates --until 1710809780
        sectionrank promote --log runs/sim/log.db --policy-dir runs/policy
    """
    sections = SectionsConfig.load(config_path)
    settings = GateSettings(margin=margin, min_decisions=min_decisions, n_bootstrap=n_bootstrap, seed=seed)
    status_quo = _fallback(fallback, sections)
    with DecisionLog.open(log_path) as log:
        version, _ = promote(
            log,
            sections,
            policy_dir,
            candidate=candidate,
            since=since,
            until=until,
            settings=settings,
            fallback=status_quo,
        )
    click.echo(f"Published {policy_dir / 'versions' / version} (current)")
    echo_version(read_version(policy_dir, version))


@click.group("policy")
def policy_group() -> None:
    """Inspect a policy directory of shipped knob policies, or roll it back.

    \b
    Example:
        sectionrank policy show runs/policy
        sectionrank policy rollback runs/policy
    """


@policy_group.command("show")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--version", "version", default=None, help="A version id (default: the published one).")
def policy_show_command(directory: Path, version: str | None) -> None:
    """Print what the published version serves per section, and the gate's decision behind it.

    \b
    Example:
        sectionrank policy show runs/policy
    """
    echo_version(read_version(directory, version))


@policy_group.command("rollback")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def policy_rollback_command(directory: Path) -> None:
    """Publish the version before the published one again (atomically); the service's workers follow it.

    DIR/current is pointed at the highest version id below the published one; rolling back again goes one
    further back. The rolled-back version stays on disk, and the next version published gets a new id. A
    learning loop running on DIR gates its next candidate against the restored version.

    \b
    Example:
        sectionrank policy rollback runs/policy
    """
    before, now = rollback(directory)
    click.echo(f"Rolled back {directory}: version {before} -> {now} (current)")
