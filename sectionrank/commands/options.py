"""Option decorators shared by the `sectionrank` commands, so the same option reads the same everywhere."""

from __future__ import annotations

from pathlib import Path

import click


def config_option(func):
    """``--config FILE``: the sections config (TOML); the shipped one when absent."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Sections config (TOML). Default: the one shipped with the package.",
    )(func)


def log_option(help_text: str = "The decision log (SQLite).", *, required: bool = True):
    """``--log FILE`` (as ``log_path``): a decision log to read."""
    return click.option(
        "--log",
        "log_path",
        type=click.Path(dir_okay=False, path_type=Path),
        required=required,
        help=help_text,
    )


def world_option(func):
    """``--world NAME|FILE``: a shipped world name or a world TOML file."""
    return click.option(
        "--world",
        "world_ref",
        default="default",
        show_default=True,
        help="World name (under simulator/worlds/) or a world TOML file.",
    )(func)
