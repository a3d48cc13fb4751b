"""The `sectionrank` command line: one click group, a thin call into the library per command.

The group loads its commands lazily (click's LazyGroup pattern): `COMMANDS` registers each by name as
``"module:attribute"`` with its one-line help, and a command's module, with what it needs (numpy, pandas,
LightGBM, Vowpal Wabbit, the simulator, Flask), is imported only when that command runs or prints its own
help. ``sectionrank --help`` lists the commands from the registered one-line helps and ``--version`` reads
the installed package's metadata, so neither imports a command; the tests check that each one-line help is
the first line of its command's docstring. A user error of any package is reported as one line
(`sectionrank.errors`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from typing import NamedTuple

import click

from sectionrank.errors import imported_user_errors


class LazyCommand(NamedTuple):
    """A command registered without importing it."""

    #: ``"module:attribute"`` of the click command.
    target: str
    #: The first line of the command's docstring, shown by ``sectionrank --help``.
    short_help: str


#: Every command of the group, by name; ``sectionrank --help`` lists them in this order, that of docs/cli.md.
COMMANDS: Mapping[str, LazyCommand] = {
    "sections": LazyCommand(
        "sectionrank.commands.sections:sections_command",
        "List the configured sections with their pipelines, knobs and arms.",
    ),
    "rerank": LazyCommand(
        "sectionrank.commands.rerank:rerank_command",
        "Re-rank one candidate list with a section's pipeline under one arm.",
    ),
    "simulate": LazyCommand(
        "sectionrank.commands.simulate:simulate_command",
        "Simulate a world's traffic under an exploring logging policy and write what a real system would "
        "log.",
    ),
    "export": LazyCommand(
        "sectionrank.commands.export:export_command",
        "Export logged decisions joined with their feedback to Parquet, one row per decision.",
    ),
    "train": LazyCommand(
        "sectionrank.commands.train:train_command",
        "Train a ranker design on a decision log and write its model directory.",
    ),
    "evaluate": LazyCommand(
        "sectionrank.commands.train:evaluate_command",
        "Evaluate model directories side by side on the held-out lists of the log they were trained on.",
    ),
    "compare": LazyCommand(
        "sectionrank.commands.compare:compare_command",
        "Compare the ranker designs and knob policies on a simulated world, and write a report.",
    ),
    "load-catalog": LazyCommand(
        "sectionrank.commands.serve:load_catalog_command",
        "Replace the store's item catalog with FILE (Parquet or CSV), atomically.",
    ),
    "load-users": LazyCommand(
        "sectionrank.commands.serve:load_users_command",
        "Replace the store's user profiles with FILE (Parquet or CSV), atomically.",
    ),
    "serve": LazyCommand(
        "sectionrank.commands.serve:serve_command",
        "Serve the HTTP API with gunicorn: POST /v1/rerank, /v1/feedback, GET /v1/sections, /metrics, ...",
    ),
    "learn": LazyCommand(
        "sectionrank.commands.learn:learn_command",
        "Learn a contextual-bandit knob policy (Vowpal Wabbit cb_explore_adf) from logged decisions.",
    ),
    "promote": LazyCommand(
        "sectionrank.commands.promote:promote_command",
        "Ship a learned knob policy per section only if a later window of the log says it does not lose.",
    ),
    "policy": LazyCommand(
        "sectionrank.commands.promote:policy_group",
        "Inspect a policy directory of shipped knob policies, or roll it back.",
    ),
    "loop": LazyCommand(
        "sectionrank.commands.loop:loop_command",
        "Learn beside the service: gate, publish and keep learning from the served decision log.",
    ),
    "replay": LazyCommand(
        "sectionrank.commands.replay:replay_command",
        "Estimate target policies' values offline from logged decisions (off-policy evaluation).",
    ),
    "experiment-report": LazyCommand(
        "sectionrank.commands.experiment_report:experiment_report_command",
        "Compare the variants of the log's A/B experiments per section and overall, with intervals.",
    ),
    "policy-value": LazyCommand(
        "sectionrank.commands.policy_value:policy_value_command",
        "Exact expected outcome per request of knob policies, from the world's click model.",
    ),
    "live": LazyCommand(
        "sectionrank.commands.live:live_command",
        "Drive a running service with a world's simulated users over HTTP, and record the value it serves.",
    ),
}


class Group(click.Group):
    """A click group that turns the errors a user can cause into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except imported_user_errors() as exc:
            # Evaluated once the command has raised: the error families of the packages it imported.
            raise click.ClickException(str(exc)) from None


class LazyGroup(Group):
    """A `Group` whose `lazy_commands` are imported by name when first looked up (click's "lazily loading
    subcommands" pattern); its help lists them with their registered one-line help, importing none."""

    def __init__(self, *args, lazy_commands: Mapping[str, LazyCommand] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *self.lazy_commands]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands:
            return self.load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def load_command(self, name: str) -> click.Command:
        """Import the command registered as `name`."""
        module_name, _, attribute = self.lazy_commands[name].target.partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy_commands[name].target} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            if name in self.lazy_commands:
                # A stand-in with the registered help, shortened the way click shortens a command's own.
                stand_in = click.Command(name, help=self.lazy_commands[name].short_help)
                rows.append((name, stand_in.get_short_help_str(limit)))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="sectionrank", prog_name="sectionrank")
def main() -> None:
    """sectionrank: one shared ranker, per-section heuristics, knobs chosen by contextual bandits.

    \b
    Example:
        sectionrank sections
        sectionrank rerank --section discover --sample 40 --arm -1
    """


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
