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


class OneLineUsageError(click.UsageError):
    """A usage error shown as one ``Error:`` line (exit status 2), without the usage text."""

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", file=file, err=True)


class LogSource(click.ParamType):
    """A decision log to read: a SQLite file, or a Parquet dataset of logs (a directory, a glob of them, or an
    fsspec URL such as ``s3://bucket/logs``). A URL stays a str (a `Path` would fold its ``//``); anything
    else becomes a `Path`."""

    name = "log"

    def convert(self, value, param, ctx) -> Path | str:
        if isinstance(value, Path):
            return value
        text = str(value)
        return text if "://" in text else Path(text)


#: The type of every ``--log`` option that reads a log.
LOG_SOURCE = LogSource()


def log_option(help_text: str = "The decision log (SQLite).", *, required: bool = True):
    """``--log SOURCE`` (as ``log_path``): a decision log, or a Parquet dataset of logs, to read."""
    return click.option(
        "--log",
        "log_path",
        type=LOG_SOURCE,
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
