"""The Parquet export of the decision log and the `export` command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from bandits.errors import BanditsError, LogNotFoundError, LogSchemaError, UnknownSectionError
from bandits.log import DecisionLog
from bandits.log_export import export_parquet
from sectionrank.commands.export import export_command
from tests.bandits.log_factories import make_decisions, make_feedback

# ---------------------------------------------------------------------------------------------------------
# Parquet export and the `export` command


def filled_log(path: Path, *, str_ids: bool = False) -> DecisionLog:
    log = DecisionLog.open(path, create=True)
    decisions = make_decisions(30, seed=30, str_ids=str_ids)
    log.append_decisions(decisions)
    log.append_decisions(make_decisions(10, seed=31, start=500, with_scores=False))
    feedback = make_feedback(decisions, seed=32)
    log.append_feedback(
        dataclasses.replace(
            feedback,
            event_id=feedback.event_id[:20],
            time=feedback.time[:20],
            clicks=feedback.clicks[:20],
            conversions=feedback.conversions[:20],
            revenue=feedback.revenue[:20],
            reward=feedback.reward[:20],
        )
    )
    return log


def assert_export_matches(exported: pd.DataFrame, joined: pd.DataFrame, id_to_text: bool) -> None:
    assert list(exported.columns) == list(joined.columns)
    assert len(exported) == len(joined)
    for column in joined.columns:
        for row, (got, want) in enumerate(zip(exported[column], joined[column], strict=True)):
            where = f"{column}[{row}]"
            if column in ("context", "knobs", "model_versions"):
                assert json.loads(got) == want, where
            elif want is None:
                assert got is None, where
            elif isinstance(want, np.ndarray):
                expected = want.astype(str) if id_to_text and column in ("candidates", "shown") else want
                np.testing.assert_array_equal(np.asarray(got), expected, err_msg=where)
            elif column == "user_id" and id_to_text:
                assert got == str(want), where
            elif isinstance(want, float) and np.isnan(want):
                assert np.isnan(got), where
            else:
                assert got == want, where


@pytest.mark.parametrize("wait", [None, 20.0])
def test_export_parquet_round_trips(tmp_path: Path, wait: float | None) -> None:
    with filled_log(tmp_path / "log.db") as log:
        summary = export_parquet(log, tmp_path / "out.parquet", wait_seconds=wait, chunk_size=7)
        joined = log.joined(wait_seconds=wait)
    exported = pd.read_parquet(tmp_path / "out.parquet")
    assert summary.rows == 40
    assert summary.with_feedback == int(joined["has_feedback"].sum())
    assert_export_matches(exported, joined, id_to_text=False)
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_parquet_mixed_ids_become_text(tmp_path: Path) -> None:
    with filled_log(tmp_path / "log.db", str_ids=True) as log:
        export_parquet(log, tmp_path / "out.parquet", section="discover")
        joined = log.joined(section="discover")
    exported = pd.read_parquet(tmp_path / "out.parquet")
    assert_export_matches(exported, joined, id_to_text=True)


def test_export_parquet_empty_log_writes_schema(tmp_path: Path) -> None:
    with DecisionLog.open(tmp_path / "log.db", create=True) as log:
        summary = export_parquet(log, tmp_path / "out.parquet")
        columns = list(log.joined().columns)
    exported = pd.read_parquet(tmp_path / "out.parquet")
    assert summary.rows == 0
    assert exported.empty
    assert list(exported.columns) == columns


def test_export_parquet_unknown_section_raises(tmp_path: Path) -> None:
    with (
        filled_log(tmp_path / "log.db") as log,
        pytest.raises(
            UnknownSectionError,
            match=r"log\.db: no decisions of section 'discovr' \(sections in the log: 'discover'",
        ),
    ):
        export_parquet(log, tmp_path / "out.parquet", section="discovr")
    assert not (tmp_path / "out.parquet").exists()


class _OneLineErrors(click.Group):
    """As the `sectionrank` group does: the errors a user can cause become one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BanditsError as exc:
            raise click.ClickException(str(exc)) from None


def make_cli(cls: type[click.Group] = click.Group) -> click.Group:
    # The help option names of the `sectionrank` group: click caches a command's help option on the command
    # object, so a local group with other names would change `sectionrank export --help` for later tests.
    @click.group(cls=cls, context_settings={"help_option_names": ["-h", "--help"]})
    def cli() -> None:
        """A local group carrying the command under test."""

    cli.add_command(export_command)
    return cli


def test_export_command_writes_parquet(tmp_path: Path) -> None:
    filled_log(tmp_path / "log.db").close()
    out = tmp_path / "out.parquet"
    args = ["export", "--log", str(tmp_path / "log.db"), "--out", str(out), "--section", "similar_items"]
    result = CliRunner().invoke(make_cli(), [*args, "--wait-seconds", "20"])
    assert result.exit_code == 0, result.output
    with DecisionLog.open(tmp_path / "log.db") as log:
        joined = log.joined(wait_seconds=20, section="similar_items")
    assert (
        f"Wrote {len(joined)} decisions ({int(joined['has_feedback'].sum())} with feedback)" in result.output
    )
    assert_export_matches(pd.read_parquet(out), joined, id_to_text=False)


def test_export_command_missing_log_raises_named_error(tmp_path: Path) -> None:
    args = ["export", "--log", str(tmp_path / "log.db"), "--out", str(tmp_path / "out.parquet")]
    result = CliRunner().invoke(make_cli(), args)
    assert isinstance(result.exception, LogNotFoundError)
    assert not (tmp_path / "log.db").exists()
    one_line = CliRunner().invoke(make_cli(_OneLineErrors), args)
    assert one_line.exit_code == 1
    assert one_line.output.strip().splitlines() == [
        f"Error: {tmp_path / 'log.db'}: no such decision log (create=True creates one)"
    ]


def test_export_command_wrong_schema_raises_named_error(tmp_path: Path) -> None:
    (tmp_path / "log.db").write_text("not a database")
    args = ["export", "--log", str(tmp_path / "log.db"), "--out", str(tmp_path / "out.parquet")]
    result = CliRunner().invoke(make_cli(), args)
    assert isinstance(result.exception, LogSchemaError)


def test_export_command_help_has_example() -> None:
    result = CliRunner().invoke(make_cli(), ["export", "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert "sectionrank export --log decisions.db --out decisions.parquet" in result.output
