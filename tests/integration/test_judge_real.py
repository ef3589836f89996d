"""LLM-judged utilities (backend/ranking/judge.py) with the packaged model; the tests without the packaged model are in tests/unit/test_judge.py."""

from __future__ import annotations

import pytest
from support.judge import CLEAR, MIXED, scorer  # noqa: F401 (scorer: a fixture)

from backend.llm.local import LLMScorer
from backend.ranking import judge


@pytest.mark.real_model
@pytest.mark.xfail(
    strict=True,
    reason="the packaged 0.5B model answers the judge questions by the review's polarity: clear positive reviews "
    "get about +0.4, clear negative ones -0.75, mixed ones -0.25 to -1 (measured); on the pool its 'difficult' "
    "utility has Spearman 0.75 with P(Positive). Strict, so a model or prompt that fixes it shows up as XPASS.",
)
def test_difficult_judge_prefers_mixed_reviews():
    from backend.llm import weights as models

    source = models.resolve(models.EMBEDDED, models.default_cache_dir())
    scorer = LLMScorer.load(source.path)
    mixed = judge.utilities(scorer, MIXED, "difficult")
    clear = judge.utilities(scorer, CLEAR, "difficult")
    assert mixed.mean() > clear.mean(), (mixed, clear)
