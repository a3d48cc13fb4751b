"""The report's renderers: a sequence of blocks (`simulator.report_blocks`) as Markdown or as HTML.

They know the block kinds and nothing of what the blocks say. Markdown names each figure and leaves it to
the HTML, which embeds every figure as a base64 PNG data URI, so that the page needs no other file.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable

from simulator.report_blocks import Block, Bullets, Figure, Heading, Paragraph, Section, Table

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
.table-wrap { overflow-x: auto; max-width: 100%; margin: 0.8em 0; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
td.r { text-align: right; white-space: nowrap; }
code { background: #f5f5f5; padding: 0 0.2em; }
p code, li code { overflow-wrap: anywhere; }
td code, th code { white-space: nowrap; }
#verdict { border: 2px solid #4a6fa5; border-radius: 6px; padding: 0 1em 0.5em; margin: 1em 0; }
#verdict > ul li { margin: 0.3em 0; }
figure { margin: 1em 0; }
img { max-width: 100%; }
""".strip()


# --- Markdown -----------------------------------------------------------------------------------------------


def _markdown_table(table: Table) -> str:
    rule = ["---" if a == "l" else "---:" for a in table.alignment]
    lines = ["| " + " | ".join(table.headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def _markdown_block(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        return _markdown_table(block)
    if isinstance(block, Figure):
        return f"*Plot: {block.title} (in report.html).*"
    if isinstance(block, Section):
        heading = _markdown_block(Heading(block.title, 2, block.anchor))
        return "\n\n".join([heading, *(_markdown_block(b) for b in block.blocks)])
    raise TypeError(f"Expected a report block, found {type(block).__name__}")


def to_markdown(blocks: Iterable[Block]) -> str:
    """The blocks as Markdown, separated by blank lines; figures by their title only."""
    return "\n\n".join(_markdown_block(block) for block in blocks) + "\n"


# --- HTML ---------------------------------------------------------------------------------------------------


def _inline(text: str) -> str:
    """Escaped text with `code` and **bold** as HTML."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{_inline(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>"
        + "".join(f'<td class="{a}">{_inline(c)}</td>' for a, c in zip(table.alignment, row, strict=True))
        + "</tr>"
        for row in table.rows
    )
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return f'<div class="table-wrap">{table_html}</div>'


def _html_figure(figure: Figure) -> str:
    data = base64.b64encode(figure.draw()).decode("ascii")
    title = html.escape(figure.title)
    return (
        f'<figure id="plot-{figure.key}">'
        f'<img src="data:image/png;base64,{data}" alt="{title}">'
        f"<figcaption>{title}</figcaption></figure>"
    )


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{block.anchor}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{_inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figure):
        return _html_figure(block)
    if isinstance(block, Section):
        inner = "\n".join(_html_block(b) for b in block.blocks)
        return f'<section id="{block.anchor}">\n<h2>{_inline(block.title)}</h2>\n{inner}\n</section>'
    raise TypeError(f"Expected a report block, found {type(block).__name__}")


def to_html(blocks: Iterable[Block], *, title: str) -> str:
    """The blocks as a self-contained HTML page titled `title`, every figure drawn and embedded."""
    body = "\n".join(_html_block(block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n"
        + body
        + "\n</body>\n</html>\n"
    )
