"""backend/labelstudio/instructions.py: the guidelines' Markdown as the HTML Label Studio shows annotators."""

from labelstudio import ROOT

from backend import guidelines as guides
from backend.labelstudio import instructions

GUIDELINES = ROOT / "guidelines" / "sentiment.md"


def test_markdown_rendering():
    md = "# Title\n\nSome **bold** and *it* & <tag>.\n\n- one\n- two\n  continued\n\n1. first\n2. second\n"
    assert instructions.render_markdown(md) == (
        "<h1>Title</h1>\n"
        "<p>Some <strong>bold</strong> and <em>it</em> &amp; &lt;tag&gt;.</p>\n"
        "<ul><li>one</li><li>two continued</li></ul>\n"
        "<ol><li>first</li><li>second</li></ol>"
    )


def test_guidelines_html_from_the_real_file():
    meta = guides.load(GUIDELINES)
    page = instructions.guidelines_html(GUIDELINES)
    assert page.startswith(f"<h1>{meta.title}</h1>")
    assert f"Guidelines version {meta.version}" in page
    assert all(f"<h2>{heading}</h2>" in page for heading in meta.sections)
    assert "<li><strong>Positive</strong>:" in page
    assert "---" not in page  # the front matter is not shown as text
