"""Test helpers shared by tests/unit/test_finish_questions.py and the tiers that build on it."""

from __future__ import annotations

import numpy as np
from helpers import ROOT

from backend.labelstudio import schema as schemas
from support.finish import SignalFeatures

FACETS = (ROOT / "label_config" / "review_facets.xml").read_text()
CONFIG = schemas.parse_config(FACETS)
SENTIMENT, ASPECTS, SPOILER = CONFIG.questions


class FacetFeatures(SignalFeatures):
    """Vectors that carry every question's answer under noise whose strength varies by text (the model is sure of
    some tasks and unsure of others), a flat LLM (0.5 for every label of the multi-label question)."""

    def __init__(self, truth: dict[str, dict], seed: int = 0):
        rng = np.random.default_rng(seed)
        self.rows = {}
        for text, t in truth.items():
            row = rng.normal(0, 1, 12)
            strength = rng.uniform(0, 8)
            row[t["sentiment"]] += strength
            row[3:7] += strength * (2 * np.array(t["aspects"]) - 1)
            row[7 + t["spoiler"]] += strength
            self.rows[text] = row
        self.saved = 0
