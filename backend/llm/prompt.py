"""The classification prompt, built from the guidelines and split around the task's text.

Everything before the text is shared by all tasks (the LLM computes it once); everything after it is a few chat
markers, so each task costs only its own tokens.

A config with one single-choice question is asked for the label alone. A config with several questions, or a
multi-label one, gets one prompt for all of them (form()): the text is read once, and every answer line the
backend needs is scored after it in the same pass: `sentiment: Positive`, ...; for a multi-label question its
labels and "none" (`aspects: Acting`, ..., `aspects: none`), each label's share among them set against a threshold
of its own (calibration.py). Measured against asking yes or no per label: better and cheaper (docs/questions.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from backend.guidelines import Guidelines

if TYPE_CHECKING:
    from backend.labelstudio.schema import Config, Schema

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
    return render(tokenizer, messages, labels)


def render(tokenizer: Any, messages: list[dict[str, str]], labels: Sequence[str]) -> Prompt:
    """The chat (system and example turns), then the task's text as the last user turn, split around that text."""
    rendered = tokenizer.apply_chat_template(
        [*messages, {"role": "user", "content": _SLOT}], tokenize=False, add_generation_prompt=True
    )
    prefix, _, suffix = rendered.partition(_SLOT)
    return Prompt(prefix=prefix, suffix=suffix, labels=tuple(labels))


def none_answer(question: "Schema") -> str:
    """What a multi-label question's "no label applies" is called: "none", unless a label is already called so."""
    return "no label" if "none" in {name.lower() for name in question.names} else "none"


def answers(question: "Schema") -> list[str]:
    """The answer lines scored for a question: one per label, and for a multi-label question one more for none."""
    names = [*question.names, none_answer(question)] if question.multiple else list(question.names)
    return [f"{question.from_name}: {name}" for name in names]


def form_system_message(guidelines: Guidelines | None, config: "Config") -> str:
    parts = [f"You are a careful annotator. {guidelines.task}" if guidelines else "You are a careful annotator."]
    if guidelines:
        parts += [f"## {name}\n{body}" for name, body in guidelines.prompt_sections.items()]
    lines = ["Answer each question about the text on its own line."]
    for q in config.questions:
        choices = ", ".join(q.names)
        if q.multiple:
            lines.append(
                f"- {q.from_name} (every label that applies, of: {choices}): answer `{q.from_name}: <label>` "
                f"for each, or `{q.from_name}: {none_answer(q)}` if none applies."
            )
        else:
            lines.append(f"- {q.from_name} (exactly one of: {choices}): answer `{q.from_name}: <label>`.")
    parts.append("\n".join(lines))
    own = guidelines.questions if guidelines else {}
    parts += [f"## Question: {q.from_name}\n{own[q.from_name]}" for q in config.questions if q.from_name in own]
    return "\n\n".join(parts)


def form(tokenizer: Any, config: "Config", guidelines: Guidelines | None) -> Prompt:
    """One prompt for every question of the config; its labels are every question's answer lines, in order."""
    return render(
        tokenizer,
        [{"role": "system", "content": form_system_message(guidelines, config)}],
        [a for q in config.questions for a in answers(q)],
    )
