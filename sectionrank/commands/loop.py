"""`sectionrank loop`: the learner beside the service (`bandits.loop.LearningLoop`)."""

from __future__ import annotations

import signal
from pathlib import Path

import click

from bandits.log import DecisionLog
from bandits.loop import LearningLoop, LoopSettings
from bandits.promote import GateSettings
from bandits.replay import parse_policy
from heuristics import SectionsConfig
from service.config import ServiceConfig
from service.errors import ServiceConfigError


def loop_settings(config: ServiceConfig, *, every: float | None, min_decisions: int | None) -> LoopSettings:
    """The loop's settings from the service config's ``[loop]`` table and ``reward_wait_seconds``."""
    table = config.loop
    return LoopSettings(
        every_seconds=table["every_seconds"] if every is None else every,
        min_decisions=table["min_decisions"] if min_decisions is None else min_decisions,
        wait_seconds=config.reward_wait_seconds,
        settle_seconds=table["settle_seconds"],
        reward=table["reward"],
        default_reward=table["default_reward"],
        fixed_arm_decisions=table["fixed_arm_decisions"],
        gate=GateSettings(
            margin=table["margin"],
            min_decisions=table["gate_min_decisions"],
            n_bootstrap=table["n_bootstrap"],
            seed=table["seed"],
        ),
    )


def policy_directory(config: ServiceConfig) -> Path:
    """The config's ``policy``, which must be a directory (created when missing) for the loop."""
    if ":" in config.policy or config.policy in ("uniform", "default", "logging"):
        raise ServiceConfigError(
            "policy", f"the loop publishes into a policy directory; the config names {config.policy!r}"
        )
    path = Path(config.policy)
    if path.is_file():
        raise ServiceConfigError("policy", f"the loop publishes into a policy directory; {path} is a file")
    path.mkdir(parents=True, exist_ok=True)
    return path


@click.command("loop")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The service config (TOML): its log, policy directory, sections config, reward_wait_seconds and "
    "[loop] table.",
)
@click.option(
    "--every",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds between looks at the log. Default: loop.every_seconds.",
)
@click.option(
    "--min-decisions",
    type=click.IntRange(min=1),
    default=None,
    help="Fewest new learnable decisions a cycle needs. Default: loop.min_decisions.",
)
@click.option("--once", is_flag=True, help="One cycle over what the log holds now, then exit.")
def loop_command(config_path: Path, every: float | None, min_decisions: int | None, once: bool) -> None:
    """Learn beside the service: gate, publish and keep learning from the served decision log.

    Every --every seconds, once at least --min-decisions decisions after the watermark are learnable (the
    reward wait window, reward_wait_seconds + loop.settle_seconds, has passed since the loop saw them), a
    cycle gates the pending candidate on them, publishes what the gate ships as the next version of the
    config's policy directory, continues learning the candidate on them, and moves the watermark
    (DIR/loop.json). Each cycle prints one line. SIGTERM or Ctrl-C stops after the current cycle; a loop
    killed mid-cycle repeats that cycle when restarted.

    \b
    Example:
        sectionrank loop --config service.toml
        sectionrank loop --config service.toml --every 10 --min-decisions 500 --once
    """
    config = ServiceConfig.load(config_path)
    settings = loop_settings(config, every=every, min_decisions=min_decisions)
    policy_dir = policy_directory(config)
    sections = SectionsConfig.load(config.sections_config)
    stopping = []

    def stop(signum, frame) -> None:
        stopping.append(signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with DecisionLog.open(config.log) as log:
            fallback = parse_policy(config.policy_fallback, sections)
            loop = LearningLoop(log, sections, policy_dir, settings, fallback=fallback)
            state = loop.state
            click.echo(
                f"loop: {config.log} -> {policy_dir} (watermark seq {state.learned_through}, "
                f"{state.cycles} cycles done); a decision is learnable "
                f"{settings.wait_seconds + settings.settle_seconds:g} s after the loop saw it"
            )

            def waiting(new: int, needed: int) -> None:
                if once:
                    click.echo(f"loop: {new} new decisions, fewer than --min-decisions {needed}; idle")

            loop.run(
                once=once,
                should_stop=lambda: bool(stopping),
                on_cycle=lambda report: click.echo(report.line()),
                on_wait=waiting,
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
