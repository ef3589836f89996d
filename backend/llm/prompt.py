"""The classification prompt, built from the guidelines and split around the task's text.

Everything before the text is shared by all tasks (the LLM computes it once); everything after it is a few chat
markers, so each task costs only its own tokens.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

from backend.llm.guidelines import Guidelines

_SLOT = "\x00TEXT\x00"


@dataclass(frozen=True)
class Prompt:
    prefix: str
    suffix: str
    labels: tuple[str, ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256("\x1f".join((self.prefix, self.suffix, *self.labels)).encode()).hexdigest()


def system_message(guidelines: Guidelines | None, labels: Sequence[str]) -> str:
    choices = ", ".join(labels)
    if guidelines is None:
        return f"Classify the text. Answer with exactly one label: {choices}."
    parts = [
        f"You are a careful annotator. {guidelines.task}",
        f"Answer with exactly one label: {choices}.",
    ]
    parts += [f"## {name}\n{body}" for name, body in guidelines.prompt_sections.items()]
    return "\n\n".join(parts)


def few_shot(guidelines: Guidelines | None, labels: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> list:
    """The guidelines' examples (and any extra ones) whose label the config offers, as chat turns."""
    known = set(labels)
    pairs = list(guidelines.examples if guidelines else []) + list(extra)
    turns: list[dict[str, str]] = []
    for text, label in pairs:
        if label in known:
            turns += [{"role": "user", "content": text}, {"role": "assistant", "content": label}]
    return turns


def build(
    tokenizer: Any,
    labels: Sequence[str],
    guidelines: Guidelines | None,
    examples: bool = True,
    extra_examples: Sequence[tuple[str, str]] = (),
) -> Prompt:
    messages = [{"role": "system", "content": system_message(guidelines, labels)}]
    if examples:
        messages += few_shot(guidelines, labels, extra_examples)
    messages.append({"role": "user", "content": _SLOT})
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix, _, suffix = rendered.partition(_SLOT)
    return Prompt(prefix=prefix, suffix=suffix, labels=tuple(labels))
