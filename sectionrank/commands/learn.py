"""`sectionrank learn` and `sectionrank replay`: learn knob policies from the log; evaluate them offline."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd

from bandits.learn import LearnSettings, learn_policy, read_decisions
from bandits.log import DecisionLog
from bandits.ope import evaluate as evaluate_logged
from bandits.ope import load_logged_bandit
from bandits.replay import POLICY_SPECS, parse_policy, replay_table
from bandits.rewards import REWARDS
from bandits.vw_policy import EXPLORATIONS, VWSettings
from heuristics import SectionsConfig
from sectionrank.commands.options import config_option, log_option
from sectionrank.progress import progress

ESTIMATOR_NAMES = ("ips", "snips", "dm", "dr", "replay")


def log_window_options(func):
    for option in reversed(
        [
            click.option(
                "--reward",
                type=click.Choice(REWARDS),
                default="clicks",
                show_default=True,
                help="What a decision earns: clicks, position-discounted clicks, conversions, revenue, "
                "or the reward sent with the feedback.",
            ),
            click.option(
                "--wait-seconds",
                type=click.FloatRange(min=0),
                default=3600.0,
                show_default=True,
                help="Reward wait window: feedback later than this after its decision is not used.",
            ),
            click.option(
                "--default-reward",
                type=float,
                default=0.0,
                show_default=True,
                help="Reward of a decision without feedback in the window.",
            ),
            click.option("--since", type=float, default=None, help="First decision time (Unix seconds)."),
            click.option(
                "--until", type=float, default=None, help="Decision times before this (Unix seconds)."
            ),
        ]
    ):
        func = option(func)
    return func


@click.command("learn")
@log_option("The decision log (SQLite) to learn from.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Policy directory; the run writes the next policy-NNNN.vw and policy-NNNN.json in it.",
)
@config_option
@log_window_options
@click.option("--exploration", type=click.Choice(EXPLORATIONS), default="epsilon", show_default=True)
@click.option("--epsilon", type=click.FloatRange(0, 1), default=0.05, show_default=True)
@click.option("--softmax-lambda", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--squarecb-gamma", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="VW's random seed.")
@click.option(
    "--continue",
    "warm",
    is_flag=True,
    help="Continue from the latest policy in --out instead of starting afresh.",
)
def learn_command(
    log_path: Path,
    out: Path,
    config_path: Path | None,
    reward: str,
    wait_seconds: float,
    default_reward: float,
    since: float | None,
    until: float | None,
    exploration: str,
    epsilon: float,
    softmax_lambda: float,
    squarecb_gamma: float,
    learning_rate: float,
    seed: int,
    warm: bool,
) -> None:
    """Learn a contextual-bandit knob policy (Vowpal Wabbit cb_explore_adf) from logged decisions.

    Joins decisions with feedback that arrived within the wait window, computes each decision's reward and
    writes a new policy version to --out with its metadata (training window, counts, settings, progressive
    validation loss). With --continue, learning resumes from the latest version in --out.

    \b
    Example:
        sectionrank learn --log runs/sim/log.db --out runs/policy --reward clicks --wait-seconds 3600
    """
    sections = SectionsConfig.load(config_path)
    settings = LearnSettings(
        reward=reward,
        wait_seconds=wait_seconds,
        default_reward=default_reward,
        since=since,
        until=until,
        vw=VWSettings(
            exploration=exploration,
            epsilon=epsilon,
            softmax_lambda=softmax_lambda,
            squarecb_gamma=squarecb_gamma,
            learning_rate=learning_rate,
            seed=seed,
        ),
    )
    with DecisionLog.open(log_path) as log:
        policy, path = learn_policy(
            log,
            sections,
            out,
            settings,
            warm_start=out if warm else None,
            progress=lambda stages: progress(stages, desc="learning"),
        )
    meta = policy.metadata_
    try:
        counts = meta["counts"]
        click.echo(
            f"Wrote {path} ({policy.version}) from {counts['decisions']:,} decisions "
            f"({counts['with_feedback']:,} with feedback); progressive validation loss "
            f"{meta['progressive_loss']:.4f}; mean {reward} {meta['mean_reward']:.4f}"
        )
        for section, n in counts["by_section"].items():
            click.echo(f"  {section:<18} {n:>9,} decisions")
        skipped = {k: v for k, v in counts["skipped"].items() if v}
        if skipped:
            click.echo(f"  skipped: {skipped}")
    finally:
        policy.close()


@click.command("replay")
@log_option("A decision log (SQLite), or a logged-bandit file (.csv / .parquet, see docs/replay.md).")
@click.option(
    "--policy",
    "policy_specs",
    multiple=True,
    required=True,
    help="Target policy (repeatable): " + "; ".join(POLICY_SPECS) + ". For a file: uniform, fixed:ACTION or "
    "column:NAME (the target's probability of the logged action).",
)
@click.option(
    "--estimators",
    default=",".join(ESTIMATOR_NAMES),
    show_default=True,
    help="Comma-separated estimators among ips, snips, dm, dr, replay.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write JSON here.")
@config_option
@log_window_options
@click.option("--n-bootstrap", type=click.IntRange(min=10), default=200, show_default=True)
@click.option(
    "--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--action-col", default="action", show_default=True, help="File input: the action column.")
@click.option("--reward-col", default="reward", show_default=True, help="File input: the reward column.")
@click.option("--pscore-col", default="pscore", show_default=True, help="File input: the propensity column.")
@click.option("--group-col", default=None, help="File input: a group column (e.g. section).")
@click.option("--n-actions", type=click.IntRange(min=1), default=None, help="File input: number of arms.")
def replay_command(
    log_path: Path,
    policy_specs: tuple[str, ...],
    estimators: str,
    out: Path | None,
    config_path: Path | None,
    reward: str,
    wait_seconds: float,
    default_reward: float,
    since: float | None,
    until: float | None,
    n_bootstrap: int,
    alpha: float,
    seed: int,
    action_col: str,
    reward_col: str,
    pscore_col: str,
    group_col: str | None,
    n_actions: int | None,
) -> None:
    """Estimate target policies' values offline from logged decisions (off-policy evaluation).

    Prints, per section (or group) and overall, each estimator's value with its bootstrap interval, the
    effective sample size and the largest importance weight.

    \b
    Example:
        sectionrank replay --log runs/sim/log.db --policy runs/policy --policy default --out replay.json
    """
    names = tuple(e.strip() for e in estimators.split(",") if e.strip())
    unknown = [e for e in names if e not in ESTIMATOR_NAMES]
    if unknown or not names:
        raise click.BadParameter(
            f"expected names among {', '.join(ESTIMATOR_NAMES)}, found {estimators!r}",
            param_hint="--estimators",
        )
    if log_path.suffix.lower() in (".csv", ".parquet"):
        table = _replay_file(
            log_path,
            policy_specs,
            names,
            n_bootstrap,
            alpha,
            seed,
            action_col,
            reward_col,
            pscore_col,
            group_col,
            n_actions,
        )
    else:
        sections = SectionsConfig.load(config_path)
        settings = LearnSettings(
            reward=reward, wait_seconds=wait_seconds, default_reward=default_reward, since=since, until=until
        )
        with DecisionLog.open(log_path) as log:
            decisions = read_decisions(log, sections, settings)
        if len(decisions) == 0:
            raise click.ClickException(f"{log_path}: no decisions in this window")
        policies = {spec: parse_policy(spec, sections) for spec in policy_specs}
        table = replay_table(
            decisions,
            sections,
            policies,
            estimators=names,
            n_bootstrap=n_bootstrap,
            alpha=alpha,
            seed=seed,
            progress=lambda steps: progress(steps, desc="replaying"),
        )
    print_replay(table)
    if out is not None:
        out.write_text(json.dumps({"alpha": alpha, "rows": table.to_dict(orient="records")}, indent=2))
        click.echo(f"\nWrote {out}")


def _replay_file(
    path, specs, names, n_bootstrap, alpha, seed, action_col, reward_col, pscore_col, group_col, n_actions
) -> pd.DataFrame:
    frames = []
    for spec in specs:
        target_col = spec[len("column:") :] if spec.startswith("column:") else None
        logged = load_logged_bandit(
            path,
            action=action_col,
            reward=reward_col,
            pscore=pscore_col,
            group=group_col,
            target_pscore=target_col,
            n_actions=n_actions,
        )
        width = logged.n_actions or int(logged.action.max()) + 1
        if target_col is not None:
            table = evaluate_logged(
                logged,
                target_pscore=logged.target_pscore,
                estimators=[e for e in names if e not in ("dm", "dr")],
                n_bootstrap=n_bootstrap,
                alpha=alpha,
                seed=seed,
            )
        else:
            if spec == "uniform":
                dist = np.full((len(logged.action), width), 1.0 / width)
            elif spec.startswith("fixed:") and spec[6:].isdigit() and int(spec[6:]) < width:
                dist = np.zeros((len(logged.action), width))
                dist[:, int(spec[6:])] = 1.0
            else:
                raise click.BadParameter(
                    f"for a file, expected uniform, fixed:ACTION (< {width}) or column:NAME, found {spec!r}",
                    param_hint="--policy",
                )
            table = evaluate_logged(
                logged, dist, estimators=names, n_bootstrap=n_bootstrap, alpha=alpha, seed=seed
            )
        table.insert(0, "policy", spec)
        frames.append(table)
    return pd.concat(frames, ignore_index=True)


def print_replay(table: pd.DataFrame) -> None:
    for policy, rows in table.groupby("policy", sort=False):
        click.echo(f"\npolicy {policy}")
        header = f"  {'section':<18} {'estimator':<8} {'value':>9} {'95% interval':>21}"
        click.echo(f"{header} {'ESS':>10} {'max w':>8} {'n':>8}")
        for row in rows.itertuples():
            click.echo(
                f"  {row.group:<18} {row.estimator:<8} {row.value:>9.4f} "
                f"[{row.ci_low:>9.4f}, {row.ci_high:>9.4f}] {row.ess:>10.1f} {row.max_weight:>8.2f} "
                f"{row.n:>8,}"
            )
