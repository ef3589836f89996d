"""Ranking a config with several questions: a task is as informative as what the team asks of it.

A task's utility is a weighted mean over the questions of its utility under the chosen strategy. Every strategy
that reads the probabilities gives utilities in [0, 1] (a margin, a normalised entropy, a Jensen-Shannon divergence,
a rank fusion), so the values are averaged as they are: a task unsure on every question comes before one unsure on
one. Percentile ranks (`strategies.rank_fusion`) were the other choice; they tie such a task with tasks unsure on
one question only, since a rank cannot say how unsure. A strategy that does not read the probabilities (random,
diversity, the LLM's judgements) ranks the same for every question, so it is computed once.

The weights (RANK_QUESTIONS): by default ("mean") every question weighs alike; "learning" weighs each by how much
it still has to learn, one minus the macro-F1 of what serves it on the project's labels (`learning_weights`), so a
question the model already answers well pulls less towards its doubtful tasks; "sentiment=2,aspects=1" weighs them
as given (a question left out weighs 0); "sentiment" picks one. The default was chosen between "learning" and
"mean" by a rule fixed before the comparison: fewer labels to 95% of the full pool's mean macro-F1 on a validation
slice of the post-facets corpus, a tie keeping the mean (docs/questions.md).

The inputs per question are what `strategies.rank` reads: its label distribution (a multi-label question's most
uncertain label as a yes/no distribution, loop/answers.py) and the LLM's, by the question's from_name.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from backend.ranking import strategies

Inputs = Mapping[str, tuple[np.ndarray, np.ndarray | None]]  # from_name → (probs, llm_probs or None)


LEARNING = "learning"
FLOOR = 0.05  # a question the model knows perfectly on its labels still counts a little: its labels may be few


def learning_weights(scores: Mapping[str, float | None]) -> dict[str, float]:
    """Each question weighs one minus the macro-F1 of what serves it (at least FLOOR); every question at 1 while
    any is not measured yet."""
    if not scores or any(v is None for v in scores.values()):
        return {name: 1.0 for name in scores}
    return {name: max(1.0 - float(v), FLOOR) for name, v in scores.items()}  # type: ignore[arg-type]


def is_learning(spec: str) -> bool:
    """Whether RANK_QUESTIONS asks for learning_weights."""
    return spec.strip() == LEARNING


def parse_weights(spec: str) -> dict[str, float]:
    """RANK_QUESTIONS as weights by question name; {} (every question at 1) for "" and "mean", and for "learning"
    (whose weights come from the project's scores: learning_weights). ValueError with what is wrong otherwise."""
    spec = spec.strip()
    if spec in ("", "mean", LEARNING):
        return {}
    weights: dict[str, float] = {}
    for part in spec.split(","):
        name, _, raw = part.partition("=")
        name = name.strip()
        if not name:
            raise ValueError(f"{spec!r}: a question name is missing (use name=weight,name=weight or one name)")
        try:
            weight = float(raw) if raw.strip() else 1.0
        except ValueError:
            raise ValueError(f"{spec!r}: the weight of {name!r} is not a number") from None
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"{spec!r}: the weight of {name!r} must be a finite number >= 0")
        weights[name] = weight
    if not any(weights.values()):
        raise ValueError(f"{spec!r}: at least one question needs a positive weight")
    return weights


def weights_for(weights: Mapping[str, float], names: Sequence[str]) -> dict[str, float]:
    """The positive weights of this config's questions: every question at 1 when `weights` is empty, or when it
    names none of them (a setting made for another config must not leave a project unranked)."""
    chosen = {name: float(weights.get(name, 0.0)) for name in names} if weights else {}
    chosen = {name: w for name, w in chosen.items() if w > 0}
    return chosen or {name: 1.0 for name in names}


def rank(
    strategy: str, inputs: Inputs, weights: Mapping[str, float], labeled_idx: Any = None, **needs: Any
) -> np.ndarray:
    """Utilities (higher = ask sooner, labeled rows -inf) of `strategy` over the questions in `inputs` at `weights`
    (weights_for's answer); `needs`: the rest of `strategies.rank`'s keywords (embeddings, extra utilities)."""
    used = [name for name in inputs if weights.get(name, 0) > 0]
    reads_probs = strategies.REGISTRY[strategy].reads_probs if strategy in strategies.REGISTRY else False
    if len(used) == 1 or not reads_probs:
        probs, llm = inputs[used[0]]
        return strategies.rank(strategy, probs, labeled_idx=labeled_idx, llm_probs=llm, **needs)
    total = sum(weights[name] for name in used)
    out = sum(
        (weights[name] / total)
        * strategies.rank(strategy, inputs[name][0], labeled_idx=labeled_idx, llm_probs=inputs[name][1], **needs)
        for name in used
    )
    return np.asarray(out, dtype=np.float64)  # labeled rows stay -inf: -inf times a positive weight


def pointwise_priority(strategy: str, inputs: Inputs, weights: Mapping[str, float]) -> np.ndarray:
    """A priority per task on its own (LOWER = ASK SOONER), before the pool is ranked: the weighted mean of each
    question's `strategies.pointwise_priority`, which all lie in [0, 1]."""
    used = {name: w for name, w in weights.items() if w > 0 and name in inputs}
    total = sum(used.values())
    return sum((w / total) * strategies.pointwise_priority(strategy, *inputs[name]) for name, w in used.items())  # type: ignore[return-value]
