"""The annotation guidelines: one Markdown file per task, the single source for annotators and for the LLM prompt."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from backend.paths import DEMO_GUIDELINES

DEFAULT_GUIDELINES = DEMO_GUIDELINES
# Sections written for people only; the prompt leaves them out so they cannot change the model's answers.
HUMAN_ONLY_SECTIONS = {"changelog", "faq"}

_EXAMPLE = re.compile(r'^-\s*"(?P<text>.+)"\s*(?:→|->)\s*(?P<label>.+?)\s*$')


class GuidelinesError(ValueError):
    """The guidelines file is missing or malformed."""


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
        return {k: v for k, v in self.sections.items() if k.lower() not in HUMAN_ONLY_SECTIONS | {"examples"}}


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
    examples = []
    for line in sections.get("Examples", "").splitlines():
        m = _EXAMPLE.match(line.strip())
        if m:
            examples.append((m.group("text"), m.group("label")))
    return Guidelines(
        title=str(meta["title"]),
        version=str(meta["version"]),
        date=str(meta["date"]),
        task=str(meta["task"]),
        sections=sections,
        examples=examples,
        sha256=hashlib.sha256(raw.encode()).hexdigest(),
    )
