"""LLM-judged utilities (backend/ranking/judge.py): prompts, shapes, caching and order on the tiny model; one check of
what the "difficult" judge says with the packaged model."""

from __future__ import annotations

import numpy as np
import pytest
from support.judge import CLEAR, MIXED, scorer  # noqa: F401 (fixtures)

from backend.dev import tiny_model
from backend.learning.vectors import VectorCache
from backend.ranking import judge

TEXTS = [
    "A warm, funny film.",
    "Dull and far too long; the cast deserved better.",
    "The film follows a retired sailor who returns to his village after thirty years at sea.",
    "I laughed, I cried, I checked my watch.",
    "Not the best, not the worst.",
]


def test_variants_and_prompts():
    assert {"informative", "difficult", "diverse"} <= set(judge.VARIANTS)
    tok = tiny_model.tokenizer()
    prompts = {v: judge.judge_prompt(tok, v) for v in judge.VARIANTS}
    for variant, prompt in prompts.items():
        assert prompt.labels == ("Yes", "No")
        assert prompt.prefix.startswith("<|im_start|>system\n")
        assert judge.VARIANTS[variant] in prompt.prefix  # the question is in the shared prefix...
        assert prompt.suffix == "<|im_end|>\n<|im_start|>assistant\n"  # ...and only chat markers follow the text
    assert len({p.sha256 for p in prompts.values()}) == len(prompts)


def test_utilities_shape_and_definition(scorer):
    u = judge.utilities(scorer, TEXTS, "informative")
    assert u.shape == (len(TEXTS),) and u.dtype == np.float64 and np.isfinite(u).all()
    lp = scorer.label_logprobs(judge.judge_prompt(scorer.tokenizer, "informative"), TEXTS)
    np.testing.assert_allclose(u, lp[:, 0] - lp[:, 1], atol=1e-4)
    assert judge.utilities(scorer, [], "difficult").shape == (0,)
    # different questions, different answers (even from a random model)
    assert not np.allclose(u, judge.utilities(scorer, TEXTS, "diverse"), atol=1e-4)


def test_utilities_do_not_depend_on_order_or_company(scorer):
    u = judge.utilities(scorer, TEXTS, "difficult")
    rev = judge.utilities(scorer, TEXTS[::-1], "difficult")
    np.testing.assert_allclose(rev[::-1], u, atol=1e-4)
    alone = np.array([judge.utilities(scorer, [t], "difficult")[0] for t in TEXTS])
    np.testing.assert_allclose(alone, u, atol=1e-4)


def test_cache_is_used_and_consistent(scorer, tmp_path, monkeypatch):
    cache = VectorCache(tmp_path / "judge.npz")
    first = judge.utilities(scorer, TEXTS + TEXTS[:2], "diverse", cache)  # duplicates scored once
    assert len(cache) == len(TEXTS)
    np.testing.assert_allclose(first[-2:], first[:2])
    np.testing.assert_allclose(first[: len(TEXTS)], judge.utilities(scorer, TEXTS, "diverse"), atol=1e-4)
    cache.save()

    def fail(*args, **kwargs):
        raise AssertionError("scored again despite the cache")

    monkeypatch.setattr(scorer, "label_logprobs", fail)
    reloaded = VectorCache(tmp_path / "judge.npz")
    np.testing.assert_array_equal(judge.utilities(scorer, TEXTS[::-1], "diverse", reloaded), first[: len(TEXTS)][::-1])


def test_unknown_variant(scorer):
    with pytest.raises(
        ValueError, match="unknown judge variant 'funny'; choose one of informative, difficult, diverse"
    ):
        judge.judge_prompt(scorer.tokenizer, "funny")
    with pytest.raises(ValueError, match="unknown judge variant"):
        judge.utilities(scorer, TEXTS, "funny")
