"""A choices annotation's result, as the tests write annotations into Label Studio."""

from __future__ import annotations


def result(label: str, from_name: str = "sentiment", to_name: str = "review") -> list[dict]:
    return [{"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [label]}}]
