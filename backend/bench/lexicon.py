"""A rule-based sentiment baseline: VADER (Hutto & Gilbert, 2014; the vaderSentiment package, MIT, lexicon inside).

Nothing here is fitted or tuned: VADER's compound score is cut at the thresholds its authors document (>= 0.05
Positive, <= -0.05 Negative, else Neutral), fixed before any of our data was seen. Any method worth running should
beat it on a sentiment corpus.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from sklearn.metrics import f1_score

POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05
LABELS = ("Positive", "Negative", "Neutral")


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()  # reads the lexicon file once


def lexicon_labels(texts: Sequence[str]) -> list[str]:
    """Positive, Negative or Neutral per text, from VADER's compound score."""
    analyzer = _analyzer()
    out = []
    for text in texts:
        compound = analyzer.polarity_scores(str(text))["compound"]
        out.append("Positive" if compound >= POSITIVE_AT else "Negative" if compound <= NEGATIVE_AT else "Neutral")
    return out


def lexicon_macro_f1(texts: Sequence[str], labels: Sequence[str]) -> float:
    """Macro-F1 of the lexicon's labels against the true `labels`, averaged over the labels present in them (on a
    two-label set a Neutral answer is a miss, not a class of its own)."""
    truth = list(labels)
    return float(f1_score(truth, lexicon_labels(texts), labels=sorted(set(truth)), average="macro", zero_division=0))
