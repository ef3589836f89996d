"""The annotation guidelines: one Markdown file per task, the single source for annotators and for the LLM prompt.

A project with several questions gives each its own `## Question: <name>` section (<name> is the <Choices> tag's
name), with `### ` subsections for its labels, rules and examples; every other `## ` section is shared by all
questions. The prompt for a question reads the shared sections and its own.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from backend.errors import LabelloopError
from backend.paths import DEMO_GUIDELINES

DEFAULT_GUIDELINES = DEMO_GUIDELINES
# Sections written for people only; the prompt leaves them out so they cannot change the model's answers.
HUMAN_ONLY_SECTIONS = {"changelog", "faq"}

_EXAMPLE = re.compile(r'^-\s*"(?P<text>.+)"\s*(?:→|->)\s*(?P<label>.+?)\s*$')
QUESTION = "Question:"


class GuidelinesError(LabelloopError, ValueError):
    """The guidelines file is missing or malformed."""

    http_status = 500


@dataclass(frozen=True)
class Guidelines:
    title: str
    version: str
    date: str
    task: str
    sections: dict[str, str]
    examples: list[tuple[str, str]] = field(default_factory=list)
    sha256: str = ""

    @property
    def prompt_sections(self) -> dict[str, str]:
        """What the prompt reads: every section but the human-only ones, the examples and the questions' own."""
        return {
            k: v
            for k, v in self.sections.items()
            if k.lower() not in HUMAN_ONLY_SECTIONS | {"examples"} and question_name(k) is None
        }

    @property
    def questions(self) -> dict[str, str]:
        """Question name → its section, for guidelines written per question (empty otherwise)."""
        return {name: body for k, body in self.sections.items() if (name := question_name(k)) is not None}

    def for_question(self, name: str) -> "Guidelines":
        """The guidelines as one question sees them: the shared sections, then its own (its lead text under its
        name, its `### ` subsections as sections). Unchanged for guidelines with no question sections."""
        own = self.questions.get(name)
        if own is None:
            return self
        lead, *blocks = re.split(r"^### ", own, flags=re.M)
        sections = {k: v for k, v in self.sections.items() if question_name(k) is None}
        if lead.strip():
            sections[name] = lead.strip()
        for block in blocks:
            heading, _, body = block.partition("\n")
            sections[heading.strip()] = body.strip()
        return Guidelines(self.title, self.version, self.date, self.task, sections, _examples(sections), self.sha256)


def question_name(heading: str) -> str | None:
    """ "Question: aspects" → "aspects"; None for a shared section."""
    if not heading.startswith(QUESTION):
        return None
    return heading[len(QUESTION) :].strip() or None


def _examples(sections: dict[str, str]) -> list[tuple[str, str]]:
    examples = []
    for line in sections.get("Examples", "").splitlines():
        m = _EXAMPLE.match(line.strip())
        if m:
            examples.append((m.group("text"), m.group("label")))
    return examples


def load(path: str | os.PathLike | None = None) -> Guidelines:
    path = Path(path or os.environ.get("GUIDELINES") or DEFAULT_GUIDELINES)
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as e:
        raise GuidelinesError(f"cannot read guidelines {path}: {e.strerror}") from None
    match = re.match(r"^---\n(.*?)\n---\n(.*)$", raw, re.S)
    if not match:
        raise GuidelinesError(f"{path}: expected a front matter block (--- version: ... ---) at the top")
    meta = yaml.safe_load(match.group(1)) or {}
    missing = [k for k in ("title", "version", "date", "task") if not meta.get(k)]
    if missing:
        raise GuidelinesError(f"{path}: front matter lacks {', '.join(missing)}")
    sections: dict[str, str] = {}
    for block in re.split(r"^## ", match.group(2), flags=re.M)[1:]:
        heading, _, body = block.partition("\n")
        sections[heading.strip()] = body.strip()
    return Guidelines(
        title=str(meta["title"]),
        version=str(meta["version"]),
        date=str(meta["date"]),
        task=str(meta["task"]),
        sections=sections,
        examples=_examples(sections),
        sha256=hashlib.sha256(raw.encode()).hexdigest(),
    )
