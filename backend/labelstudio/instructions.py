"""The guidelines as the instructions Label Studio shows annotators: their Markdown rendered as HTML."""

from __future__ import annotations

import html
import os
import re

from backend import guidelines as guides
from backend.labelstudio.client import SyncError

_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
]
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\d+[.)]\s+(.*)$")


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text


def render_markdown(text: str) -> str:
    """The Markdown the guidelines use (headings, lists, paragraphs, bold, italics, code) as HTML.

    Deliberately small: Label Studio shows the result as the project's instructions, and the guidelines
    stay plain enough that a full Markdown library is not worth a new dependency.
    """
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def close_paragraph() -> None:
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    def close_list() -> None:
        nonlocal list_tag
        if items:
            out.append(f"<{list_tag}>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + f"</{list_tag}>")
            items.clear()
        list_tag = ""

    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            close_paragraph()
            close_list()
            continue
        heading, bullet, numbered = _HEADING.match(line), _BULLET.match(line), _NUMBERED.match(line)
        if heading:
            close_paragraph()
            close_list()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item := bullet or numbered:
            close_paragraph()
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                close_list()
                list_tag = tag
            items.append(item.group(1))
        elif items and raw[:1].isspace():
            items[-1] += " " + line  # an indented line continues the list item above it
        else:
            close_list()
            paragraph.append(line)
    close_paragraph()
    close_list()
    return "\n".join(out)


def guidelines_html(path: str | os.PathLike) -> str:
    """The guidelines file as the HTML Label Studio shows annotators: title, task, version, then every section."""
    try:
        g = guides.load(path)
    except guides.GuidelinesError as e:
        raise SyncError(str(e)) from None
    body = "\n\n".join(f"## {heading}\n{text}" for heading, text in g.sections.items())
    header = (
        f"<h1>{html.escape(g.title)}</h1>\n<p><em>{html.escape(g.task)}</em></p>\n"
        f"<p>Guidelines version {html.escape(g.version)}, {html.escape(g.date)}</p>\n"
    )
    return header + render_markdown(body)
