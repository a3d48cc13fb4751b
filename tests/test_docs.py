"""The docs cover the code: every CLI command is in docs/cli.md, every HTTP route in docs/http-api.md, every
heuristic, knob and param in docs/sections-config.md, and the examples there load and run.

Commands are found by walking the click group, so commands added later are checked without editing this file.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from heuristics import SectionsConfig
from heuristics.registry import HEURISTICS
from sectionrank.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
PROGRAM = "sectionrank"

#: Commands whose documented examples are run here (they need no files, models or servers).
RUNNABLE_EXAMPLES = {("sections",), ("rerank",)}


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command under `group` as a path of names, nested groups and their commands included (lazily
    registered commands are looked up, which imports them)."""
    paths = []
    context = click.Context(group)
    for name in group.list_commands(context):
        paths.append((*prefix, name))
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
    return paths


def fenced_blocks(text: str, language: str | None = None) -> list[str]:
    pattern = r"^```" + (re.escape(language) if language else r"[\w-]*") + r"[^\n]*\n(.*?)^```"
    return re.findall(pattern, text, flags=re.S | re.M)


def headings(text: str) -> list[str]:
    """Heading lines, outside fenced code, without the leading #'s."""
    outside = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return [m.group(2).strip() for m in re.finditer(r"^(#{1,6})\s+(.*)$", outside, flags=re.M)]


def sections_by_heading(text: str) -> dict[str, str]:
    """Each heading's text, mapped to the body up to the next heading of the same or a higher level."""
    outside = re.sub(r"^```.*?^```", lambda m: m.group(0).replace("#", ""), text, flags=re.S | re.M)
    matches = list(re.finditer(r"^(#{1,6})\s+(.*)$", outside, flags=re.M))
    bodies = {}
    for i, m in enumerate(matches):
        level = len(m.group(1))
        end = len(outside)
        for later in matches[i + 1 :]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        bodies[m.group(2).strip()] = outside[m.end() : end]
    return bodies


def code_spans(text: str) -> list[str]:
    """Inline code spans and fenced code blocks."""
    return re.findall(r"`([^`\n]+)`", text) + fenced_blocks(text)


def mentions_command(text: str, path: tuple[str, ...]) -> bool:
    """Whether `sectionrank <path>` (or the bare path) is a heading, or `sectionrank <path>` is in code."""
    full = " ".join((PROGRAM, *path))
    bare = " ".join(path)
    for heading in headings(text):
        plain = heading.replace("`", "").strip()
        if plain in (full, bare):
            return True
    word = re.compile(rf"(^|\s|\$ ){re.escape(full)}(?=\s|$)", flags=re.M)
    return any(word.search(code) for code in code_spans(text))


CLI_DOC = (DOCS / "cli.md").read_text()
CONFIG_DOC = (DOCS / "sections-config.md").read_text()
HEURISTICS_DOC = (DOCS / "heuristics.md").read_text()
HTTP_DOC = (DOCS / "http-api.md").read_text()


@pytest.mark.parametrize("path", command_paths(main), ids=" ".join)
def test_docs_cli_documents_every_command(path):
    assert mentions_command(CLI_DOC, path), (
        f"docs/cli.md has no heading or code for `{PROGRAM} {' '.join(path)}`"
    )


def command_section(text: str, path: tuple[str, ...]) -> str:
    """The part of the doc under the command's own heading, or the whole doc when it has none."""
    names = (" ".join((PROGRAM, *path)), " ".join(path))
    for heading, body in sections_by_heading(text).items():
        if heading.replace("`", "").strip() in names:
            return body
    return text


@pytest.mark.parametrize("path", command_paths(main), ids=" ".join)
def test_docs_cli_documents_every_option_of_every_command(path):
    command = main
    for name in path:
        command = command.get_command(click.Context(command), name)
    body = command_section(CLI_DOC, path)
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            for flag in param.opts:
                if flag.startswith("--") and flag != "--help":
                    assert flag in body, f"docs/cli.md, `{PROGRAM} {' '.join(path)}`, does not mention {flag}"


def test_docs_mention_command_finds_headings_and_code_only():
    text = (
        "# Title\n\n## `sectionrank alpha`\n\nRun `sectionrank beta --x`.\n\n```sh\nsectionrank gamma\n```\n"
    )
    assert mentions_command(text, ("alpha",))
    assert mentions_command(text, ("beta",))
    assert mentions_command(text, ("gamma",))
    assert not mentions_command(text + "\nsectionrank delta in prose\n", ("delta",))
    assert not mentions_command(text, ("alph",))
    assert not mentions_command(text, ("bet",))


def example_commands(text: str) -> list[list[str]]:
    """The `sectionrank ...` lines of the ```sh blocks, as argument lists."""
    lines = []
    for block in fenced_blocks(text, "sh"):
        for line in block.splitlines():
            if line.startswith(PROGRAM + " "):
                lines.append(shlex.split(line)[1:])
    return lines


def test_docs_cli_examples_run():
    ran = 0
    for args in example_commands(CLI_DOC):
        if tuple(args[:1]) not in RUNNABLE_EXAMPLES or "--candidates" in args or "--config" in args:
            continue
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, f"{PROGRAM} {shlex.join(args)}: {result.output}"
        ran += 1
    assert ran >= 3


def http_routes(tmp_path) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, HEAD and OPTIONS aside."""
    from service.app import create_app, get_state
    from service.config import ServiceConfig

    config = ServiceConfig.from_dict({"store": tmp_path / "store.db", "log": tmp_path / "log.db"}, environ={})
    app = create_app(config)
    get_state(app).close()
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    )


def test_docs_http_api_documents_every_route(tmp_path):
    routes = http_routes(tmp_path)
    assert ("POST", "/v1/rerank") in routes
    titles = " ".join(headings(HTTP_DOC))
    for method, path in routes:
        assert f"| {method} | `{path}` |" in HTTP_DOC, f"docs/http-api.md: no table row for {method} {path}"
        assert f"`{method} {path}`" in titles, f"docs/http-api.md: no heading for {method} {path}"


@pytest.mark.parametrize("name", list(HEURISTICS))
def test_docs_sections_config_documents_every_heuristic_knob_and_param(name):
    cls = HEURISTICS[name]
    bodies = {heading.replace("`", ""): body for heading, body in sections_by_heading(CONFIG_DOC).items()}
    assert name in bodies, f"docs/sections-config.md has no heading for the heuristic `{name}`"
    body = bodies[name]
    for knob, spec in cls.KNOBS.items():
        assert f"`{knob}`" in body, f"docs/sections-config.md, `{name}`, lacks the knob `{knob}`"
        assert re.search(rf"`{knob}` \|[^\n]*\| {spec.default:g} \|", body), (
            f"`{name}.{knob}`: no default {spec.default:g}"
        )
    for param, spec in cls.PARAMS.items():
        assert f"`{param}`" in body, f"docs/sections-config.md, `{name}`, lacks the param `{param}`"
        for choice in spec.choices:
            assert f"`{choice}`" in body, (
                f"docs/sections-config.md, `{name}.{param}`, lacks the choice `{choice}`"
            )


@pytest.mark.parametrize("name", list(HEURISTICS))
def test_docs_heuristics_page_gives_every_heuristics_formula(name):
    assert f"`{name}`" in HEURISTICS_DOC


def test_docs_sections_config_examples_are_valid_configs():
    blocks = fenced_blocks(CONFIG_DOC, "toml")
    assert len(blocks) >= 2
    for block in blocks:
        config = SectionsConfig.from_dict(tomllib.loads(block))
        assert len(list(config)) >= 1


def test_docs_sections_config_documents_every_key():
    from heuristics.config import _SECTION_KEYS, _TOP_KEYS, ServingSettings

    for key in sorted(_TOP_KEYS | _SECTION_KEYS | set(ServingSettings._LIMITS)):
        assert f"| `{key}` |" in CONFIG_DOC, f"docs/sections-config.md has no table row for `{key}`"


# Output shown in the docs is checked against the commands, so that it cannot go stale. A ```text block whose
# first line is `$ sectionrank ...` shows commands and their output: each `$` line is run (in an empty
# directory, help at a fixed width) and what follows it, up to the next `$` line, must be its output. The
# docs shorten and generalise explicitly with `…`: a line that is only `…` stands for any number of lines,
# and `…` inside a line for any text on it (a path, a temporary directory). A block whose commands need files
# the test does not have is marked on the line above its fence: `<!-- output not checked: why -->`.
# Help blocks (`Usage: sectionrank ...`) must start with their `$ sectionrank ... --help` line.

#: The width help is rendered at in the docs (the project's line length).
HELP_WIDTH = 110
NOT_CHECKED = re.compile(r"<!-- output not checked: [^>]+ -->")
ELLIPSIS = "…"


def output_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, body, checked) of every ```text block that starts with `$ sectionrank `."""
    blocks = []
    for match in re.finditer(r"^```text[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
        body = match.group(1)
        if not body.startswith(f"$ {PROGRAM} "):
            continue
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, body, not NOT_CHECKED.fullmatch(before.strip())))
    return blocks


def block_commands(body: str) -> list[tuple[list[str], str]]:
    """The block's (arguments, expected output) pairs, one per `$` line."""
    pairs = []
    for part in re.split(rf"^\$ {PROGRAM} ", body, flags=re.M)[1:]:
        command, _, expected = part.partition("\n")
        pairs.append((shlex.split(command), expected))
    return pairs


def output_pattern(expected: str) -> re.Pattern[str]:
    """A regex of the shown output: `…` alone on a line is any lines, `…` in a line any text on it."""
    parts = []
    for line in expected.splitlines():
        if line.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split(ELLIPSIS)) + r"[ \t]*\n")
    return re.compile("".join(parts))


def run_shown(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, args, prog_name=PROGRAM, terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH
    )
    return result.exit_code, result.output


def _doc_output_cases() -> list:
    cases = []
    for page in sorted(DOCS.glob("*.md")):
        for line, body, checked in output_blocks(page.read_text()):
            for args, expected in block_commands(body):
                marks = () if checked else (pytest.mark.skip(reason="marked: output not checked"),)
                cases.append(
                    pytest.param(args, expected, id=f"{page.name}:{line} {' '.join(args)}"[:90], marks=marks)
                )
    return cases


@pytest.mark.parametrize(("args", "expected"), _doc_output_cases())
def test_docs_shown_output_is_what_the_command_prints(args, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, output = run_shown(args)
    assert code == (1 if expected.startswith("Error:") else 0), output
    assert output_pattern(expected).fullmatch(output), (
        f"`{PROGRAM} {shlex.join(args)}` prints, against the docs:\n{output}"
    )


def test_docs_help_blocks_are_checked():
    for page in sorted(DOCS.glob("*.md")):
        for block in fenced_blocks(page.read_text(), "text"):
            assert not block.startswith(f"Usage: {PROGRAM}"), (
                f"docs/{page.name}: start the help block {block.splitlines()[0]!r} with its `$ {PROGRAM} ... "
                "--help` line, so that it is checked"
            )


def test_docs_output_pattern_reads_ellipses_as_any_text():
    pattern = output_pattern("Config: /…/sections.toml\n\n[a]\n…\n  end\n")
    assert pattern.fullmatch("Config: /x/y/sections.toml\n\n[a]\n  one\n  two\n  end\n")
    assert pattern.fullmatch("Config: /x/sections.toml\n\n[a]\n  end\n")
    assert not pattern.fullmatch("Config: /x/sections.toml\n\n[b]\n  end\n")
    assert not pattern.fullmatch("Config: /x/sections.toml\n\n[a]\n  end\n  extra\n")
    assert output_pattern("Error: x (…)\n").fullmatch("Error: x (anything here)\n")


def test_docs_output_blocks_skip_only_the_marked_ones():
    text = (
        "```text\n$ sectionrank sections\nA\n```\n\n<!-- output not checked: needs files -->\n"
        "```text\n$ sectionrank x --y\nB\n$ sectionrank z\nC\n```\n\n```text\nnot output\n```\n"
    )
    blocks = output_blocks(text)
    assert [(checked, block_commands(body)) for _, body, checked in blocks] == [
        (True, [(["sections"], "A\n")]),
        (False, [(["x", "--y"], "B\n"), (["z"], "C\n")]),
    ]
