"""Test helpers shared by tests/unit/test_label_issues_script.py and the tiers that build on it."""

from __future__ import annotations

import os

import numpy as np
import warm
from helpers import ROOT

from backend import corpus

SCRIPT = warm.labelloop("label-issues")
CONFIG_PATH = ROOT / "label_config" / "sentiment.xml"
LABELS = ["Positive", "Negative", "Neutral"]


def script(*args, env=None, timeout=600):
    full = {**os.environ, **(env or {})}
    return warm.run([*SCRIPT, *args], cwd=ROOT, env=full, timeout=timeout)


def reviews(n: int, flips: int, seed: int):
    """n corpus reviews with their labels, `flips` of them changed to the next label: (texts, given, flipped rows)."""
    df = corpus.stratified_split(corpus.load(), [n], seed=seed)[0].reset_index(drop=True)
    flipped = set(np.random.default_rng(seed).choice(n, size=flips, replace=False).tolist())
    given = [LABELS[(LABELS.index(label) + 1) % 3] if i in flipped else label for i, label in enumerate(df["label"])]
    return list(df["text"]), given, flipped
