import pytest

from backend import guidelines
from backend.dev import tiny_model
from backend.labelstudio.export import Item
from backend.llm.local import LLMScorer
from backend.quality import llm_vs_human


def test_majority_and_ties():
    assert llm_vs_human.majority({1: "a", 2: "a", 3: "b"}) == "a"
    assert llm_vs_human.majority({1: "a", 2: "b"}) is None
    assert llm_vs_human.majority({}) is None


def test_kappas_against_each_human_and_the_majority():
    labels = ("P", "N")
    items = [
        Item(i, "t", {1: h1, 2: h2, 3: h3})
        for i, (h1, h2, h3) in enumerate([("P", "P", "P"), ("N", "N", "P"), ("P", "N", "P"), ("N", "N", "N")])
    ]
    llm = ["P", "N", "P", "N"]  # equals annotator 1 and the majority, differs from 2 once and from 3 once
    out = llm_vs_human.kappas(items, [1, 2, 3], llm, labels)
    assert out["1"]["kappa"] == pytest.approx(1.0) and out["majority"]["kappa"] == pytest.approx(1.0)
    # annotator 2 vs llm: agree on 3 of 4; p_o = .75, p_e = (2/4*1/4 + 2/4*3/4) = .5 → κ = .5
    assert out["2"]["kappa"] == pytest.approx(0.5) and out["2"]["n"] == 4


def test_variants_differ_in_what_the_prompt_holds():
    scorer = LLMScorer(tiny_model.model(), tiny_model.tokenizer())
    g = guidelines.load()
    names = ("Positive", "Negative", "Neutral")
    prompts = {v: llm_vs_human.variant_prompt(scorer, names, g, v) for v in llm_vs_human.VARIANTS}
    assert "Rules" not in prompts["minimal"].prefix and "Rules" in prompts["guidelines"].prefix
    assert "I loved every minute of it." in prompts["few-shot"].prefix
    assert "I loved every minute of it." not in prompts["guidelines"].prefix
    labels = llm_vs_human.llm_labels(scorer, prompts["few-shot"], ["good", "bad"])
    assert len(labels) == 2 and set(labels) <= set(names)
    with pytest.raises(ValueError):
        llm_vs_human.variant_prompt(scorer, names, g, "chain-of-thought")
