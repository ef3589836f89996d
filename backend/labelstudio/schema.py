"""Which questions the backend fills, read from a Label Studio labeling config (never from constants).

A question is one whole-task <Choices> on a text-like tag: single-choice (one label) or multi-label
(choice="multiple": any number of labels, possibly none). A config may hold several; the others (per-region
choices, choices shown only after another answer, choices listed by the task, controls that are not choices)
are left to the annotator, and the config says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Iterable

import numpy as np
from label_studio_sdk.label_interface import LabelInterface

from backend.errors import LabelloopError

# The object tags whose task field holds text the LLM can read: plain text, HTML, and dialogues.
TEXT_TAGS = ("Text", "HyperText", "Paragraphs")
# Label Studio's forms that take one answer: "single" (the default) and "single-radio" (radio buttons).
SINGLE_CHOICE = ("single", "single-radio")
MULTIPLE_CHOICE = "multiple"
# A multi-label answer as one string (the labels in config order, joined), so votes, consensus and stats treat a set
# like any label; "" is the empty set: no label applies.
SET_SEPARATOR = "\x1f"


class SchemaError(LabelloopError, ValueError):
    """The labeling config cannot be served; the message says what is missing."""

    http_status = 422


@dataclass(frozen=True)
class Schema:
    """One question the backend fills: a <Choices> on a text-like tag."""

    from_name: str  # the Choices tag
    to_name: str  # the text-like tag it labels
    data_key: str  # the task data field that tag shows ($text → "text")
    labels: tuple[str, ...]  # values written into results (a Choice's alias when it has one)
    names: tuple[str, ...]  # what the LLM is asked to choose from (the Choice's visible value)
    object_tag: str = "Text"  # which of TEXT_TAGS the text comes from
    name_key: str = "author"  # Paragraphs only: each line's speaker field (nameKey)
    text_key: str = "text"  # Paragraphs only: each line's text field (textKey)
    multiple: bool = False  # choice="multiple": every label that applies, possibly none

    @classmethod
    def of_labels(cls, labels: Iterable[str], multiple: bool = False, from_name: str = "") -> "Schema":
        """A question known only by its labels (an export's, without its config): enough for its rules."""
        labels = tuple(labels)
        return cls(from_name, "", "", labels, labels, multiple=multiple)

    def result(self, *labels: str) -> dict:
        return {
            "from_name": self.from_name,
            "to_name": self.to_name,
            "type": "choices",
            "value": {"choices": list(labels)},
        }

    def key(self, labels: Any) -> str:
        """A multi-label question's answer as one string (see SET_SEPARATOR)."""
        chosen = set(labels)
        return SET_SEPARATOR.join(label for label in self.labels if label in chosen)

    def members(self, key: str) -> tuple[str, ...]:
        return tuple(key.split(SET_SEPARATOR)) if key else ()

    # The question's rules, in one home: people's answers as a model learns them, and what a model's probabilities
    # answer. A calibrated probability puts each label's threshold at 0.5, so a multi-label label applies at 0.5.

    def targets(self, answers: Iterable[str]) -> np.ndarray:
        """Answers (labels; multi-label: keys) as label indices, or (multi-label) an (n, k) 0/1 matrix."""
        answers = list(answers)
        if not self.multiple:
            return np.array([self.labels.index(answer) for answer in answers], dtype=int)
        y = np.zeros((len(answers), len(self.labels)), dtype=int)
        for row, answer in enumerate(answers):
            for label in self.members(answer):
                y[row, self.labels.index(label)] = 1
        return y

    def decisions(self, probs: np.ndarray) -> np.ndarray:
        """What (n, k) probabilities answer, in targets()' form."""
        p = np.asarray(probs, dtype=float)
        return (p >= 0.5).astype(int) if self.multiple else p.argmax(axis=1)

    def chosen(self, row: np.ndarray) -> list[str]:
        """The labels one task's probabilities choose: the likeliest, or (multi-label) every one that applies."""
        if self.multiple:
            return [label for label, p in zip(self.labels, row) if p >= 0.5]
        return [self.labels[int(np.argmax(row))]]

    def answer(self, row: np.ndarray) -> str:
        """chosen() as one answer string: the label, or (multi-label) the key of the set ("" when none applies)."""
        return self.key(self.chosen(row)) if self.multiple else self.chosen(row)[0]

    def confidence(self, probs: np.ndarray) -> np.ndarray:
        """How sure the model is of its whole answer, per task (what a finishing threshold is compared with): the top
        probability; for a multi-label question the least sure of its labels' yes/no decisions, min over labels of
        max(p, 1 - p): the answer is the set, so it clears the bar only when every label's decision does."""
        p = np.asarray(probs, dtype=float)
        return np.maximum(p, 1.0 - p).min(axis=1) if self.multiple else p.max(axis=1)

    def margin(self, probs: np.ndarray) -> np.ndarray:
        """How far the answer is from another, per task: the gap between the two likeliest labels; for a multi-label
        question the least sure of its labels' yes/no decisions, min over labels of |2p - 1|."""
        p = np.asarray(probs, dtype=float)
        if self.multiple:
            return np.abs(2 * p - 1).min(axis=1)
        if p.shape[1] < 2:
            return np.ones(len(p))
        top2 = np.sort(p, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]

    def correct(self, probs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Whether each answer is the people's (`y` in targets()' form): the label, or exactly the set."""
        guess, y = self.decisions(probs), np.asarray(y, dtype=int)
        return (guess == y.reshape(guess.shape)).all(axis=1) if self.multiple else guess == y

    def text_of(self, data: Any) -> str | None:
        """The text an annotator reads in a task's data, or None if the field is missing or not of the tag's shape.

        Blank text comes back as it is: callers decide what an empty text means for them."""
        value = data.get(self.data_key) if isinstance(data, dict) else None
        if self.object_tag == "Paragraphs":
            return _dialogue_text(value, self.name_key, self.text_key)
        if not isinstance(value, str):
            return None
        return _visible_text(value) if self.object_tag == "HyperText" else value

    @property
    def shape(self) -> str:
        """What the data field must hold, for messages about tasks that do not have it."""
        if self.object_tag == "Paragraphs":
            return f'a list of {{"{self.name_key}": ..., "{self.text_key}": "..."}} lines'
        return "an HTML string" if self.object_tag == "HyperText" else "a string"


def _dialogue_text(value: Any, name_key: str, text_key: str) -> str | None:
    # One "speaker: text" line per utterance, as the dialogue layout shows them.
    if not isinstance(value, list):
        return None
    lines = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get(text_key), str):
            return None
        name = item.get(name_key)
        lines.append(f"{name}: {item[text_key]}" if isinstance(name, str) and name.strip() else item[text_key])
    return "\n".join(lines)


class _TextCollector(HTMLParser):
    # Script and style bodies are not shown to the annotator, so the model does not read them either.
    hidden = {"script", "style", "template", "head"}
    # Tags that sit inside a word ("<b>un</b>likely"); every other tag separates what is on either side.
    inline = {
        "a",
        "abbr",
        "b",
        "code",
        "em",
        "font",
        "i",
        "mark",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "u",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in self.hidden:
            self.depth += 1
        self._separate(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.hidden and self.depth:
            self.depth -= 1
        self._separate(tag)

    def handle_data(self, data: str) -> None:
        if not self.depth:
            self.parts.append(data)

    def _separate(self, tag: str) -> None:
        if tag not in self.inline:
            self.parts.append(" ")


def _visible_text(html: str) -> str:
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    return " ".join("".join(collector.parts).split())  # the page's layout whitespace is not part of the text


def _labels(control: Any) -> tuple[str, ...]:
    # What Label Studio writes into a result for each <Choice>: its alias when it has one, else its value.
    return tuple(c.value for c in control.labels_attrs.values())


def choices(config: str, from_name: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Any <Choices> tag of a config (from_name, else the first), served or not, and the labels its results hold:
    what reports on people's labels need, where parse() asks what the backend can pre-annotate."""
    try:
        interface = LabelInterface(config)
    except Exception as e:  # the SDK raises its own XML error types; only the message matters here
        raise SchemaError(f"not valid XML: {e}") from None
    tags = [c for c in interface.controls if c.tag == "Choices"]
    if not tags:
        raise SchemaError("no <Choices> tag")
    if from_name is not None:
        named = [c for c in tags if c.name == from_name]
        if not named:
            raise SchemaError(f'no <Choices name="{from_name}"> (it has: {", ".join(c.name for c in tags)})')
        tags = named
    labels = tuple(dict.fromkeys(label for label in _labels(tags[0]) if label))
    if not labels:
        raise SchemaError(f'<Choices name="{tags[0].name}"> has no <Choice value=...>')
    return tags[0].name, labels


@dataclass(frozen=True)
class Config:
    """Every question of a labeling config the backend fills, in the config's order, and the controls it leaves to
    the annotator with the reason (name, reason)."""

    questions: tuple[Schema, ...]
    left_out: tuple[tuple[str, str], ...] = ()

    @property
    def primary(self) -> Schema:
        """The first question: the one read where one label per task is shown (the top level of finish's file and of
        reports; each question has its own part beside it)."""
        return self.questions[0]

    @property
    def single(self) -> bool:
        """One single-choice question: the prompt and calibration the backend has always used for it."""
        return len(self.questions) == 1 and not self.questions[0].multiple

    def question(self, from_name: str) -> Schema:
        for q in self.questions:
            if q.from_name == from_name:
                return q
        raise SchemaError(f"no question named {from_name!r} (the config has: {', '.join(self.names)})")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(q.from_name for q in self.questions)


def as_config(config: Config | Schema) -> Config:
    """A question on its own is a config of one question."""
    return config if isinstance(config, Config) else Config((config,))


def is_multiple(config: str, from_name: str) -> bool:
    """Whether a <Choices> tag of the config is multi-label (choice="multiple")."""
    interface = LabelInterface(config)
    return any(
        c.tag == "Choices" and c.name == from_name and c.attr.get("choice") == MULTIPLE_CHOICE
        for c in interface.controls
    )


def parse(config: str) -> Schema:
    """The config's first question the backend can fill (see parse_config), or SchemaError saying why none."""
    return parse_config(config).primary


def parse_single(config: str) -> Schema:
    """parse(), for the tools that read one label per task (synthetic examples): a multi-label first question is a
    SchemaError saying so. Finishing and label issues read every question (parse_config)."""
    question = parse(config)
    if question.multiple:
        raise SchemaError(
            f'the first question, <Choices name="{question.from_name}">, is multi-label '
            '(choice="multiple"); this reads single-choice questions only'
        )
    return question


def parse_config(config: str) -> Config:
    """Every question the backend can fill, or SchemaError saying why there is none."""
    return _parse(config)


def _refusal(control: Any, objects: dict) -> str | None:
    """Why the backend cannot fill this Choices tag, as the feature it would need; None if it can."""
    targets = [objects[name] for name in control.to_name if name in objects]
    if not targets:
        return "its toName names no object tag of the config"
    if not any(t.tag in TEXT_TAGS for t in targets):
        tags = " and ".join(sorted({f"<{t.tag}>" for t in targets}))
        return f"it labels {tags}, not <Text>, <HyperText> or <Paragraphs>"
    if control.attr.get("perRegion", "").lower() == "true":
        return 'it is per-region (perRegion="true"): only whole-task choices are filled'
    choice = control.attr.get("choice", "single")
    if choice not in SINGLE_CHOICE and choice != MULTIPLE_CHOICE:
        return f'choice="{choice}" is not a form Label Studio knows'
    if control.attr.get("value"):
        return f'its choices come from the task (value="{control.attr["value"]}"), not from <Choice> tags'
    if control.attr.get("visibleWhen"):
        # Whether it is asked at all depends on another answer; pre-filling it would answer a hidden question.
        return f'it is shown only when another answer is chosen (visibleWhen="{control.attr["visibleWhen"]}")'
    return None


@lru_cache(maxsize=64)
def _parse(config: str) -> Config:
    if not isinstance(config, str) or not config.strip():
        raise SchemaError("the labeling config is empty")
    try:
        interface = LabelInterface(config)
    except Exception as e:  # the SDK raises its own XML error types; only the message matters here
        raise SchemaError(f"the labeling config is not valid XML: {e}") from None
    objects = {o.name: o for o in interface.objects}
    if not any(o.tag in TEXT_TAGS for o in objects.values()):
        raise SchemaError("the labeling config has no <Text>, <HyperText> or <Paragraphs> tag to classify")
    controls = list(interface.controls)
    if not any(c.tag == "Choices" for c in controls):
        raise SchemaError("the labeling config has no <Choices> tag whose toName is a text tag")
    questions, left_out, refused = [], [], []
    for control in controls:
        if control.tag != "Choices":
            left_out.append((control.name, f"<{control.tag}> is not a choice: left to the annotator"))
            continue
        try:
            reason = _refusal(control, objects)
            if reason:
                raise SchemaError(reason)
            questions.append(_question(control, objects))
        except SchemaError as e:
            left_out.append((control.name, str(e)))
            refused.append((control.name, str(e)))
    # One prompt reads one text: a question on another text of the task is left to the annotator.
    for q in list(questions[1:]):
        first = questions[0]
        if (q.data_key, q.object_tag) != (first.data_key, first.object_tag):
            questions.remove(q)
            left_out.append(
                (
                    q.from_name,
                    f"it labels ${q.data_key}, and the questions filled read ${first.data_key}: "
                    "one text per task is read",
                )
            )
    if not questions:
        why = "; ".join(f"{name}: {reason}" for name, reason in refused)
        raise SchemaError(f"the labeling config has no <Choices> tag the backend can fill ({why})")
    return Config(tuple(questions), tuple(left_out))


def _question(control: Any, objects: dict) -> Schema:
    texts = [objects[n] for n in control.to_name if n in objects and objects[n].tag in TEXT_TAGS]
    target = next((t for t in texts if (t.value or "").startswith("$")), texts[0])  # a fixed caption is no task text
    choice_tags = list(control.labels_attrs.values())
    if len(choice_tags) < 2:
        raise SchemaError(f'<Choices name="{control.name}"> needs at least two <Choice> values')
    names = tuple(c.attr.get("value", c.value) for c in choice_tags)
    labels = _labels(control)
    blank = [n for n in names if not isinstance(n, str) or not n.strip()]
    if blank or any(not isinstance(v, str) or not v.strip() for v in labels):
        raise SchemaError(f'<Choices name="{control.name}"> has a <Choice> with an empty value')
    if len(set(names)) < len(names):
        raise SchemaError(f'<Choices name="{control.name}"> lists the same <Choice> value twice')
    value = target.value or ""
    tag = f'<{target.tag} name="{target.name}">'
    if not value.startswith("$") or len(value) < 2:
        raise SchemaError(f'{tag} must take its text from a task field (value="$field")')
    if target.attr.get("valueType", "").lower() == "url":
        # The backend reads text from the task; it does not download what a URL points to.
        raise SchemaError(f'{tag} loads its text from a URL (valueType="url"), which is not supported')
    return Schema(
        from_name=control.name,
        to_name=target.name,
        data_key=value[1:],
        labels=labels,
        names=names,
        object_tag=target.tag,
        name_key=target.attr.get("nameKey", "author"),
        text_key=target.attr.get("textKey", "text"),
        multiple=control.attr.get("choice") == MULTIPLE_CHOICE,
    )
