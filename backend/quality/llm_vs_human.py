"""The LLM as one more annotator: its Cohen's κ against each human and against the human majority,
for several prompt variants, on the same items.

Variants (all with contextual calibration, which needs no labels, so no variant is tuned on the items):
- minimal: "Classify the text", the label names and nothing else;
- guidelines: the guidelines' task, labels, rules and edge cases, no examples;
- few-shot: the guidelines plus their examples as chat turns (what the backend serves).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

from backend.guidelines import Guidelines
from backend.labelstudio.export import MISSING, Item
from backend.llm import calibration as cal
from backend.llm import prompt as prompts
from backend.llm.scorer import Scorer
from backend.quality import agreement

VARIANTS = ("minimal", "guidelines", "few-shot")


def variant_prompt(scorer: Scorer, names: Sequence[str], guidelines: Guidelines, variant: str) -> prompts.Prompt:
    if variant not in VARIANTS:
        raise ValueError(f"unknown prompt variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if variant == "minimal":
        return prompts.build(scorer.tokenizer, names, None, examples=False)
    return prompts.build(scorer.tokenizer, names, guidelines, examples=variant == "few-shot")


def llm_labels(scorer: Scorer, prompt: prompts.Prompt, texts: Sequence[str]) -> list[str]:
    calibration = cal.contextual(prompt.labels, scorer.label_logprobs(prompt, list(cal.CONTENT_FREE)))
    probs = calibration.apply(scorer.label_logprobs(prompt, list(texts)))
    return [prompt.labels[i] for i in probs.argmax(1)]


def majority(labels: dict) -> str | None:
    """The label most annotators chose, or None on a tie."""
    counts = Counter(labels.values()).most_common(2)
    if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def kappas(items: Sequence[Item], annotators: Sequence, llm: Sequence[str], labels: Sequence[str]) -> dict:
    """κ of the LLM's labels against each annotator (items they labeled) and against the majority."""
    index = {label: i for i, label in enumerate(labels)}
    ours = np.array([index[x] for x in llm])

    def against(column: list) -> dict:
        theirs = np.array([index[x] if x in index else MISSING for x in column])
        k = agreement.cohen_kappa(ours, theirs)
        return {"kappa": k, "band": agreement.landis_koch(k), "n": int((theirs != MISSING).sum())}

    out = {str(a): against([item.labels.get(a) for item in items]) for a in annotators}
    if len(annotators) > 1:
        out["majority"] = against([majority(item.labels) for item in items])
    return out
