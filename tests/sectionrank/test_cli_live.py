"""`sectionrank live` at the command line: what a user gets wrong is one line and exit status 1. (The runs
against a real service are in tests/simulator/test_live_gunicorn.py.)"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sectionrank.cli import main
from tests.conftest import WORLD_FILE

# Wrong input: (arguments, the line's message).
BAD = [
    (["--url", "127.0.0.1:8000"], "Expected `url` like http://127.0.0.1:8000"),
    (["--url", "http://127.0.0.1:9"], "Expected a service at `url` http://127.0.0.1:9, found none"),
    (["--url", "http://127.0.0.1:9", "--world", "no-such-world"], "no-such-world"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_cli_live_refuses_bad_input_in_one_line(args, message, tmp_path):
    base = ["live", "--world", str(WORLD_FILE), "--requests", "5", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(main, [*base, *args])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ")
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_live_needs_a_url_and_an_out_directory(tmp_path):
    result = CliRunner().invoke(main, ["live", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--url" in result.output
