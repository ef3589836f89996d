"""LLM-judged informativeness: one number per text saying how much the LLM thinks labeling it is worth.

Each variant asks the LLM a Yes/No question about a review. The answer is never generated: the scorer reads the
log-probabilities of "Yes" and "No" after the question in one forward pass (the same machinery as the labels), and
the utility is log P(Yes) - log P(No), higher = ask sooner. It feeds `strategies.rank(...,
extra_utilities={"llm_informative": u})`, where only its order matters.

Variants:
- informative: would labeling this review teach a sentiment classifier something it cannot easily guess?
- difficult: is the review's sentiment hard or ambiguous to judge?
- diverse: is the review unlike typical movie reviews?

The question sits in the system message and before the review in the user turn, so it belongs to the prompt's
shared prefix (computed once per variant); after the review come only the chat markers, and each text costs
only its own tokens.

Measured with the packaged Qwen2.5-Coder-0.5B: its Yes/No answers follow the review's polarity more than the
question (Spearman 0.73-0.77 with its own P(Positive) on a 1,500-review pool, for all three variants; clear
positive reviews are judged more "difficult" than mixed ones). Questions after the review, few-shot examples,
a negated twin question and a control question were tried on a held-out sample; none removed the bias. In the
simulated loop (labelloop compare-strategies) the judged strategies need 2-2.5x random sampling's labels.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from backend.learning.vectors import VectorCache
from backend.llm.prompt import Prompt
from backend.llm.scorer import Scorer

ANSWERS = ("Yes", "No")
_SLOT = "\x00TEXT\x00"

_ROLE = (
    "You help choose which movie reviews a human should label next for a sentiment classifier "
    "(labels: Positive, Negative, Neutral). Answer with exactly one word: Yes or No."
)

# variant -> the question asked about each review
VARIANTS: dict[str, str] = {
    "informative": (
        "Would labeling this review teach a sentiment classifier something it cannot easily guess, "
        "because its sentiment is not obvious from its words?"
    ),
    "difficult": (
        "Is the sentiment of this review hard or ambiguous to judge, for example mixed praise and criticism, "
        "sarcasm, faint praise or no clear opinion?"
    ),
    "diverse": ("Is this review unusual, unlike typical movie reviews in its topic, wording, style or length?"),
}


def _check(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown judge variant {variant!r}; choose one of {', '.join(VARIANTS)}")


def judge_prompt(tokenizer: Any, variant: str) -> Prompt:
    """The chat prompt of `variant`, split around the review; its labels are ANSWERS."""
    _check(variant)
    messages = [
        {"role": "system", "content": _ROLE},
        {"role": "user", "content": f"{VARIANTS[variant]}\n\nReview: {_SLOT}"},
    ]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prefix, _, suffix = rendered.partition(_SLOT)
    return Prompt(prefix=prefix, suffix=suffix, labels=ANSWERS)


def utilities(scorer: Scorer, texts: Sequence[str], variant: str, cache: VectorCache | None = None) -> np.ndarray:
    """log P(Yes) - log P(No) per text (float64, shape (len(texts),)), higher = more worth labeling.

    `cache`, if given, keeps each text's two log-probabilities; it must belong to this scorer's weights and this
    variant's prompt (`judge_prompt(...).sha256`), which the caller names it by."""
    prompt = judge_prompt(scorer.tokenizer, variant)
    texts = list(texts)
    if not texts:
        return np.zeros(0)

    def compute(batch: list[str]) -> np.ndarray:
        return scorer.label_logprobs(prompt, batch)

    logprobs = cache.get(texts, compute) if cache is not None else compute(texts)
    logprobs = np.asarray(logprobs, dtype=np.float64)
    return logprobs[:, 0] - logprobs[:, 1]
