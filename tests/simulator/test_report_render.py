"""The report's renderers: every block kind as Markdown and as HTML, from blocks alone (no results)."""

from __future__ import annotations

import base64
import typing
from html.parser import HTMLParser

import pytest

from simulator.report_blocks import Block, Bullets, Figure, Heading, Paragraph, Section, Table
from simulator.report_render import to_html, to_markdown

PNG = b"\x89PNG\r\n\x1a\nnot-really-a-png"


class _Drawn:
    """A figure's drawing function that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return PNG


#: One block of every kind, and what each renderer writes for it.
SAMPLES: dict[type, tuple[Block, str, str]] = {
    Heading: (
        Heading("Cost of `a` & b", 2, "cost"),
        "## Cost of `a` & b",
        '<h2 id="cost">Cost of <code>a</code> &amp; b</h2>',
    ),
    Paragraph: (
        Paragraph("The **bold** claim: `x < y`."),
        "The **bold** claim: `x < y`.",
        "<p>The <strong>bold</strong> claim: <code>x &lt; y</code>.</p>",
    ),
    Bullets: (Bullets(("one", "`two`")), "- one\n- `two`", "<ul><li>one</li><li><code>two</code></li></ul>"),
    Table: (
        Table(("name", "value"), (("`a`", "1.0"), ("b", "2.0"))),
        "| name | value |\n| --- | ---: |\n| `a` | 1.0 |\n| b | 2.0 |",
        '<div class="table-wrap"><table><thead><tr><th>name</th><th>value</th></tr></thead><tbody><tr>'
        '<td class="l"><code>a</code></td><td class="r">1.0</td></tr><tr><td class="l">b</td>'
        '<td class="r">2.0</td></tr></tbody></table></div>',
    ),
    Section: (
        Section("verdict", "Verdict: `a`", (Paragraph("Run **a**."), Bullets(("one",)))),
        "## Verdict: `a`\n\nRun **a**.\n\n- one",
        '<section id="verdict">\n<h2>Verdict: <code>a</code></h2>\n<p>Run <strong>a</strong>.</p>\n'
        "<ul><li>one</li></ul>\n</section>",
    ),
    Figure: (
        Figure("bars", "Clicks <by> section", lambda: PNG),
        "*Plot: Clicks <by> section (in report.html).*",
        '<figure id="plot-bars"><img src="data:image/png;base64,'
        + base64.b64encode(PNG).decode("ascii")
        + '" alt="Clicks &lt;by&gt; section"><figcaption>Clicks &lt;by&gt; section</figcaption></figure>',
    ),
}


def test_render_samples_cover_every_block_kind():
    assert set(SAMPLES) == set(typing.get_args(Block))


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.__name__)
def test_to_markdown_renders_every_block_kind(kind):
    block, markdown, _ = SAMPLES[kind]
    assert to_markdown([block]) == markdown + "\n"


@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda k: k.__name__)
def test_to_html_renders_every_block_kind(kind):
    block, _, html = SAMPLES[kind]
    page = to_html([block], title="t")
    body = page.split("<body>\n", 1)[1].rsplit("\n</body>", 1)[0]
    assert body == html


def test_to_markdown_separates_blocks_with_a_blank_line():
    blocks = [SAMPLES[Heading][0], SAMPLES[Paragraph][0], SAMPLES[Bullets][0]]
    assert to_markdown(blocks) == "\n\n".join(SAMPLES[type(b)][1] for b in blocks) + "\n"


def test_table_alignment_follows_align_or_defaults_to_first_left():
    explicit = Table(("a", "b", "c"), (("1", "2", "3"),), "rlr")
    assert to_markdown([explicit]).splitlines()[1] == "| ---: | --- | ---: |"
    assert '<td class="r">1</td><td class="l">2</td><td class="r">3</td>' in to_html([explicit], title="t")
    assert Table(("a", "b", "c"), ()).alignment == "lrr"


def test_only_html_draws_the_figures():
    draw = _Drawn()
    blocks = [Figure("bars", "Bars", draw), Figure("dots", "Dots", draw)]
    to_markdown(blocks)
    assert draw.calls == 0
    to_html(blocks, title="t")
    assert draw.calls == 2


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_title = tag == "title"

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        self._in_title = False


def test_to_html_is_one_self_contained_page_with_an_escaped_title():
    page = to_html([block for block, _, _ in SAMPLES.values()], title="Design comparison: <w>")
    assert page.startswith("<!DOCTYPE html>\n")
    parser = _Page()
    parser.feed(page)
    assert parser.title == "Design comparison: <w>"
    assert parser.tags.count("style") == 1
    assert "<link" not in page
    assert "<script" not in page


@pytest.mark.parametrize("render", [to_markdown, lambda blocks: to_html(blocks, title="t")])
def test_renderers_refuse_what_is_not_a_block(render):
    with pytest.raises(TypeError, match="Expected a report block, found str"):
        render(["text"])
