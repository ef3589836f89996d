"""The 0.5B → 1.5B cascade as a trade-off, before it is served: what the larger model's answers on the tasks the
smaller is least sure of would give, at what cost.

Each model answers the pool and the test split as the backend serves a new project (the pool's label-free
calibration measured on its own texts, MiniLM placing them against a matching fitted file); its seconds per text
are timed on the test split in the same run. A cascade at share s keeps the 0.5B's answers and replaces, on the
fraction s of texts with the smallest 0.5B margin (top probability minus the next), the 1.5B's calibrated ones; it
costs the 0.5B's pass plus the 1.5B's on that fraction. The share a default would take is chosen on the pool splits
(`choose_share`), then read on the test splits.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
from sklearn.metrics import f1_score

if TYPE_CHECKING:
    from backend.bench.simulation import Inputs
    from backend.labelstudio.schema import Config
    from backend.llm.cascade import Cascade

SHARES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
KEEP = 0.70  # of the 1.5B's gain over the 0.5B
MOST_COST = 1.6  # times the 0.5B's time per text


@dataclass(frozen=True)
class ModelAnswers:
    model: str
    pool: np.ndarray  # (n_pool, k) served probabilities
    test: np.ndarray
    seconds_per_text: float  # answering the test split, after the pool was measured
    methods: tuple[str, ...]  # the calibration that served


@dataclass(frozen=True)
class Point:
    share: float
    pool_macro_f1: float
    test_macro_f1: float
    cost: float  # time per text against the 0.5B's


def macro_f1(y: np.ndarray, probs: np.ndarray) -> float:
    return float(f1_score(y, probs.argmax(axis=1), labels=np.unique(y), average="macro", zero_division=0))


def margin(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def cascade(small: np.ndarray, large: np.ndarray, share: float) -> np.ndarray:
    """The small model's answers with the large model's on the `share` of rows the small is least sure of."""
    out = small.copy()
    n = int(round(share * len(small)))
    if n:
        unsure = np.argsort(margin(small), kind="stable")[:n]
        out[unsure] = large[unsure]
    return out


def answer(model: str, source, embed) -> ModelAnswers:
    """The model's served answers on a benchmark source (backend/bench/datasets.py), timed on its test split."""
    from backend.labelstudio import schema as schemas
    from backend.serving.service import load_predictor
    from backend.settings import Settings

    predictor = load_predictor(Settings(llm_model=model, guidelines=source.guidelines))
    config = schemas.parse_config(source.config)
    pool_texts, test_texts = list(source.pool["text"]), list(source.test["text"])
    measured = predictor.measure_pool(config, pool_texts, embed)
    name = config.primary.from_name
    started = time.perf_counter()
    test = predictor.answers(config, test_texts, measured)[name]
    seconds = (time.perf_counter() - started) / len(test_texts)
    pool = predictor.answers(config, pool_texts, measured)[name]
    return ModelAnswers(model, pool, test, seconds, tuple(sorted(predictor.methods(config, measured))))


def curve(small: ModelAnswers, large: ModelAnswers, pool_y, test_y, shares: Sequence[float] = SHARES) -> list[Point]:
    """The cascade at each share, and the two models alone (share 0 and 1)."""
    ratio = large.seconds_per_text / small.seconds_per_text
    return [
        Point(
            share,
            round(macro_f1(pool_y, cascade(small.pool, large.pool, share)), 4),
            round(macro_f1(test_y, cascade(small.test, large.test, share)), 4),
            round(1 + share * ratio, 3),
        )
        for share in (0.0, *shares, 1.0)
    ]


def choose_share(curves: Sequence[list[Point]]) -> float:
    """The default share, from the pool splits alone: the smallest share whose mean pool macro-F1 keeps KEEP of the
    1.5B's mean gain, among those costing at most MOST_COST; else the costliest share within it (the most gain it
    can buy); the smallest when the 1.5B gains nothing."""
    shares = [p.share for p in curves[0]]
    mean = {s: float(np.mean([c[i].pool_macro_f1 for c in curves])) for i, s in enumerate(shares)}
    cost = {s: float(np.mean([c[i].cost for c in curves])) for i, s in enumerate(shares)}
    gain = mean[1.0] - mean[0.0]
    within = [s for s in shares if 0 < s < 1 and cost[s] <= MOST_COST]
    if not within:
        return min(shares[1:-1])
    if gain <= 0:
        return min(within)
    keeping = [s for s in within if mean[s] - mean[0.0] >= KEEP * gain]
    return min(keeping) if keeping else max(within)


def as_dict(points: list[Point]) -> list[dict]:
    return [asdict(p) for p in points]


def served_inputs(
    predictor: Cascade,
    inputs: Inputs,
    config: Config,
    pool_texts: list[str],
    test_texts: list[str],
    embed: Callable[[list[str]], np.ndarray],
) -> tuple[Inputs, dict]:
    """A simulation's inputs (simulation.load_inputs, read with the cascade's first model) as the cascade serves a
    project of these texts: the pool measured (the second model's calibration and the threshold), the first model's
    answers refined where it is unsure; the LLM-alone alternatives dropped, as Cascade.shifts drops them. Also what
    the refinement did, for the results."""
    measured = predictor.measure_pool(config, pool_texts, embed)
    name = config.primary.from_name
    taught = measured.student
    if taught is not None and inputs.pool_h is not None and taught.layer == inputs.info.get("llm_state_layer"):
        pool_first, test_first = taught.apply(inputs.pool_h), taught.apply(inputs.test_h)  # the same states
    elif taught is not None:
        pool_first = predictor.first_answers(config, pool_texts, measured)[name]
        test_first = predictor.first_answers(config, test_texts, measured)[name]
    else:
        pool_first, test_first = inputs.pool_llm, inputs.test_llm
    pool_llm = predictor.refine(config, pool_texts, {name: pool_first}, measured)[name]
    test_llm = predictor.refine(config, test_texts, {name: test_first}, measured)[name]
    info = {
        "models": [predictor.source.name, predictor.second.source.name],
        "model_version": predictor.version(config, measured),
        "share": predictor.share,
        "unsure_below": measured.unsure_below,
        "student": taught is not None,
        "refined_pool": round(float((pool_llm != pool_first).any(axis=1).mean()), 4),
        "refined_test": round(float((test_llm != test_first).any(axis=1).mean()), 4),
    }
    return replace(inputs, pool_llm=pool_llm, test_llm=test_llm, shifts={}), info
