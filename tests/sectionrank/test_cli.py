"""The command group itself: commands load lazily, `--help` and `--version` import no library, a command
imports only what it needs, user errors are one line, and each registered one-line help is the first line of
its command's docstring."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from sectionrank import errors
from sectionrank.cli import COMMANDS, LazyGroup, main

#: Libraries a command that does not need them must not import: the heavy third-party ones and ours.
HEAVY = (
    "pandas",
    "pyarrow",
    "matplotlib",
    "lightgbm",
    "vowpalwabbit",
    "flask",
    "bandits",
    "ranker",
    "service",
    "simulator",
)
NOTHING = (*HEAVY, "numpy", "heuristics")

PROBE = """
import json, sys
from sectionrank.cli import main
try:
    main({args!r})
except SystemExit:
    pass
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""

# Each row: the command line, the top-level modules it must leave unimported, and what it prints.
IMPORTS = [
    pytest.param(["--version"], NOTHING, "sectionrank, version ", id="--version"),
    pytest.param(["--help"], NOTHING, "Commands:", id="--help"),
    pytest.param([], NOTHING, "Commands:", id="no arguments"),
    pytest.param(["sections", "--json"], HEAVY, '"discover": {', id="sections"),
    pytest.param(
        ["sections", "--config", "/no/such/sections.toml"],
        HEAVY,
        "Error: config: file not found: /no/such/sections.toml\n",
        id="sections, a user error",
    ),
]


@pytest.mark.parametrize(("args", "unimported", "printed"), IMPORTS)
def test_cli_imports_only_what_the_command_needs(args, unimported, printed):
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    *output, modules = done.stdout.splitlines()
    loaded = set(json.loads(modules))
    assert loaded.isdisjoint(unimported), sorted(loaded & set(unimported))
    assert printed in "\n".join(output) + done.stderr


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


def test_cli_user_errors_list_every_packages_family():
    from bandits.errors import BanditsError
    from heuristics.errors import HeuristicsError
    from ranker.errors import RankerError
    from service.errors import ServiceError
    from simulator.errors import SimulatorError

    families = {HeuristicsError, BanditsError, RankerError, ServiceError, SimulatorError}
    assert set(errors.USER_ERRORS) == families
    # Every family is imported in this process by now, so the group catches every one.
    assert set(errors.imported_user_errors()) == families
