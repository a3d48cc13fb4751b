"""`sectionrank learn`: learn knob policies from the decision log; `sectionrank replay` evaluates them."""

from __future__ import annotations

from pathlib import Path

import click

from bandits.dataset_read import open_log
from bandits.learn import LearnSettings, learn_policy
from bandits.rewards import REWARDS
from bandits.vw_policy import CB_TYPES, EXPLORATIONS, VWSettings
from heuristics import SectionsConfig
from sectionrank.commands.options import config_option, log_option
from sectionrank.progress import progress


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
@log_option(
    "The decision log to learn from: a SQLite file, or a Parquet dataset of logs (a directory, glob or URL)."
)
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
    "--cb-type",
    type=click.Choice(CB_TYPES),
    default=VWSettings.cb_type,
    show_default=True,
    help="VW's contextual-bandit reduction.",
)
@click.option(
    "--cells/--no-cells",
    default=True,
    show_default=True,
    help="Cells layout: per section, cross the knob values with the context fields that cross-validation "
    "on the log chooses (segment, device, hour); --no-cells crosses every context feature with each arm.",
)
@click.option(
    "--factored/--no-factored",
    default=True,
    show_default=True,
    help="Without --cells: write each knob as a knob=value indicator, shared by the arms with that value, "
    "not a number.",
)
@click.option(
    "--section-interactions/--no-section-interactions",
    default=VWSettings.section_interactions,
    show_default=True,
    help="Cross pairs of context features (section x segment, ...) with the arm features (VW --cubic UUA).",
)
@click.option(
    "--passes",
    type=click.IntRange(1, 100),
    default=VWSettings.passes,
    show_default=True,
    help="Passes over the data; VW stops early when its held-out loss (every 10th example) stops improving.",
)
@click.option(
    "--l2", type=click.FloatRange(min=0), default=VWSettings.l2, show_default=True, help="L2 penalty."
)
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
    cb_type: str,
    cells: bool,
    factored: bool,
    section_interactions: bool,
    passes: int,
    l2: float,
    warm: bool,
) -> None:
    """Learn a contextual-bandit knob policy (Vowpal Wabbit cb_explore_adf) from logged decisions.

    Joins decisions with feedback that arrived within the wait window, computes each decision's reward and
    writes a new policy version to --out with its metadata (training window, counts, settings, progressive
    validation loss). The log is streamed into Vowpal Wabbit chunk by chunk, in bounded memory. With
    --continue, learning resumes from the latest version in --out.

    \b
    Example:
        sectionrank learn --log runs/sim/log.db --out runs/policy --reward clicks --wait-seconds 3600
        sectionrank learn --log runs/dataset --out runs/policy
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
            cb_type=cb_type,
            cells=cells,
            factored=factored,
            section_interactions=section_interactions,
            passes=passes,
            l2=l2,
        ),
    )
    with open_log(log_path) as log:
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
            f"({counts['with_feedback']:,} with feedback)"
        )
        click.echo(progressive_text(meta["progressive_loss"], meta["mean_reward"], reward))
        cell_fields = policy.cell_choice.fields if policy.cell_choice is not None else None
        for section, n in counts["by_section"].items():
            line = f"  {section:<18} {n:>9,} decisions"
            if cell_fields is not None:
                line += f"  cells: {' x '.join(cell_fields.get(section, ())) or 'one (no context field)'}"
            click.echo(line)
        skipped = {k: v for k, v in counts["skipped"].items() if v}
        if skipped:
            click.echo(f"  skipped: {skipped}")
    finally:
        policy.close()


def progressive_text(loss: float | None, mean_reward: float, reward: str) -> str:
    """The progressive validation loss as what it measures: VW's loss is a cost, and cost = -reward."""
    if loss is None or loss != loss:  # no example learned from, or an older policy without the number
        return f"  {reward} per decision: {mean_reward:.4f} logged"
    return (
        f"  {reward} per decision: {-loss:.4f} estimated for the policy as it learned, {mean_reward:.4f} "
        "logged.\n"
        "  (Progressive validation: each decision is valued, off-policy from its logged probability, under\n"
        "  the policy learned from the decisions before it. Vowpal Wabbit reports it as a loss, a cost, and\n"
        f"  cost = -reward: its loss here is {loss:.4f}, negative because rewards are positive.)"
    )
