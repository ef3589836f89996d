"""Which tag the backend fills, read from a Label Studio labeling config (never from constants)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from label_studio_sdk.label_interface import LabelInterface


class SchemaError(ValueError):
    """The labeling config cannot be served; the message says what is missing."""


@dataclass(frozen=True)
class Schema:
    from_name: str  # the Choices tag
    to_name: str  # the Text tag it labels
    data_key: str  # the task data field the Text tag shows ($text → "text")
    labels: tuple[str, ...]  # values written into results (a Choice's alias when it has one)
    names: tuple[str, ...]  # what the LLM is asked to choose from (the Choice's visible value)

    def result(self, label: str) -> dict:
        return {
            "from_name": self.from_name,
            "to_name": self.to_name,
            "type": "choices",
            "value": {"choices": [label]},
        }


def parse(config: str) -> Schema:
    """The single-choice Choices on a Text tag that the config holds, or SchemaError saying why not."""
    return _parse(config)


@lru_cache(maxsize=64)
def _parse(config: str) -> Schema:
    if not isinstance(config, str) or not config.strip():
        raise SchemaError("the labeling config is empty")
    try:
        interface = LabelInterface(config)
    except Exception as e:  # the SDK raises its own XML error types; only the message matters here
        raise SchemaError(f"the labeling config is not valid XML: {e}") from None
    texts = {o.name: o for o in interface.objects if o.tag == "Text"}
    if not texts:
        raise SchemaError("the labeling config has no <Text> tag to classify")
    candidates = []
    for control in interface.controls:
        if control.tag != "Choices":
            continue
        targets = [name for name in control.to_name if name in texts]
        if not targets or control.attr.get("choice", "single") != "single":
            continue
        candidates.append((control, targets[0]))
    if not candidates:
        raise SchemaError(
            "the labeling config has no single-choice <Choices> tag whose toName is a <Text> tag "
            '(choice="multiple" is not supported)'
        )
    if len(candidates) > 1:
        names = ", ".join(c.name for c, _ in candidates)
        raise SchemaError(f"the labeling config is ambiguous: several single-choice <Choices> on <Text> ({names})")
    control, to_name = candidates[0]
    choices = list(control.labels_attrs.values())
    if len(choices) < 2:
        raise SchemaError(f"<Choices name=\"{control.name}\"> needs at least two <Choice> values")
    names = tuple(c.attr.get("value", c.value) for c in choices)
    labels = tuple(c.value for c in choices)
    blank = [n for n in names if not isinstance(n, str) or not n.strip()]
    if blank or any(not isinstance(v, str) or not v.strip() for v in labels):
        raise SchemaError(f"<Choices name=\"{control.name}\"> has a <Choice> with an empty value")
    if len(set(names)) < len(names):
        raise SchemaError(f"<Choices name=\"{control.name}\"> lists the same <Choice> value twice")
    value = texts[to_name].value or ""
    if not value.startswith("$") or len(value) < 2:
        raise SchemaError(f"<Text name=\"{to_name}\"> must take its text from a task field (value=\"$field\")")
    return Schema(
        from_name=control.name,
        to_name=to_name,
        data_key=value[1:],
        labels=labels,
        names=names,
    )
