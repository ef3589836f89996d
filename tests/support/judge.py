"""Test helpers shared by tests/unit/test_judge.py and the tiers that build on it."""

from __future__ import annotations

import pytest

from backend.dev import tiny_model
from backend.llm.local import LLMScorer


@pytest.fixture(scope="module")
def scorer():
    return LLMScorer(tiny_model.model(), tiny_model.tokenizer())


MIXED = [
    "Great performances trapped in a muddled, overlong story; I admired it more than I enjoyed it.",
    "The first half is charming and the second half is a chore.",
    "Beautiful to look at, but I felt nothing, and I'm still not sure whether that was the point.",
    "It's a perfectly okay film that you will forget by tomorrow.",
]


CLEAR = [
    "A brilliant, hilarious and deeply moving film. I loved it.",
    "Boring, ugly and stupid. I hated every minute.",
    "Perfect in every way, a true masterpiece.",
    "An unwatchable disaster from start to finish.",
]
