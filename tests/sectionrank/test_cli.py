"""The command group itself: commands load lazily, `--help` and `--version` import no library, and each
registered one-line help is the first line of its command's docstring."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from sectionrank.cli import COMMANDS, LazyGroup, main

#: Packages that `sectionrank --help` and `--version` must not import (ours and the heavy third-party ones).
HEAVY = (
    "numpy",
    "pandas",
    "pyarrow",
    "matplotlib",
    "lightgbm",
    "vowpalwabbit",
    "flask",
    "heuristics",
    "bandits",
    "ranker",
    "service",
    "simulator",
)

PROBE = """
import json, sys
from sectionrank.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


@pytest.mark.parametrize("args", [["--version"], ["--help"], []], ids=["--version", "--help", "no args"])
def test_cli_help_and_version_import_no_library(args):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    *printed, modules = done.stdout.strip().splitlines()
    loaded = set(json.loads(modules))
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "sectionrank" in "\n".join(printed) + done.stderr


@pytest.mark.parametrize("name", list(COMMANDS))
def test_cli_lazy_command_resolves_to_its_name_and_docstring(name):
    command = main.get_command(click.Context(main), name)
    assert isinstance(command, click.Command)
    assert command.name == name
    first_line = inspect.cleandoc(command.help or "").splitlines()[0]
    assert COMMANDS[name].short_help == first_line


def test_cli_help_lists_every_command_with_its_registered_help():
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    for name, entry in COMMANDS.items():
        assert f"  {name} " in listed
        assert entry.short_help.rstrip(".")[:40] in listed


def test_cli_version_is_the_installed_packages():
    from importlib.metadata import version

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"sectionrank, version {version('sectionrank')}"


def test_cli_lazy_group_refuses_a_target_that_is_not_a_command():
    group = LazyGroup(lazy_commands={"odd": COMMANDS["sections"]._replace(target="sectionrank.cli:COMMANDS")})
    with pytest.raises(TypeError, match=r"sectionrank\.cli:COMMANDS is not a click command"):
        group.get_command(click.Context(group), "odd")


def test_cli_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(main, ["nope"])
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.output
