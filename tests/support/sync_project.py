"""Test helpers shared by tests/unit/test_project_sync.py and the tiers that build on it."""

from __future__ import annotations

from labelstudio import ROOT

GUIDELINES = ROOT / "guidelines" / "sentiment.md"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def assert_one_line_error(done, *fragments):
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
