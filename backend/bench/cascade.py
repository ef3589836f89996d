"""The 0.5B → 1.5B cascade as a trade-off, as it serves (backend/llm/cascade.py): what the larger model's answers
give at what cost, measured on packaged corpora.

Each model reads the pool and the test split as the backend serves a new project (simulation.load_inputs: the
pool's label-free calibration, the hidden state the loop reads), and its seconds per text are timed on the test
split in the same run. The student is fitted as the cascade fits it: on the pool's calibration sample, the 0.5B's
state against the 1.5B's answers, no label read (student.Student); its threshold for a share is that quantile of its
margins out of fold. A cascade at share s answers with the student and takes the 1.5B's answers below it; it costs
the 0.5B's pass plus the 1.5B's on about that share (the sample's 1.5B pass at connect is the 1.5B's own pool
measure, which the cascade needs anyway).

The pool's figures are read on the pool rows outside the sample (the student was fitted on the sample); the rules
fixed on them (`choose_c`, `choose_share`) are then read on the test splits. Each point also has the served setup's
macro-F1 after 100 random labels (simulation.learning_curve), the loop's models reading the 0.5B's state and the
cascade's answers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Callable, Mapping, Sequence, cast

import numpy as np
from sklearn.metrics import f1_score

from backend.bench.results import CascadePoint
from backend.labelstudio.schema import Schema
from backend.llm import student as students

if TYPE_CHECKING:
    from backend.bench import datasets
    from backend.bench.simulation import Inputs
    from backend.labelstudio.schema import Config
    from backend.llm.cascade import Cascade

SHARES = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
STUDENT_CS = (0.01, 0.1, 1.0)  # the readout's regularisation the pools choose among
KEEP = 0.70  # of the 1.5B's gain over the 0.5B
MOST_COST = 1.6  # times the 0.5B's time per text
CURVE_LABELS = 100


@dataclass(frozen=True)
class Point:
    share: float  # of texts the 1.5B answers: 0 the student alone, 1 the 1.5B alone
    pool_macro_f1: float
    test_macro_f1: float
    cost: float  # time per text against the 0.5B's
    after_labels: float | None = None  # the served setup's test macro-F1 after CURVE_LABELS random labels


@dataclass(frozen=True)
class Measured:
    """One corpus: the two models' inputs, which pool rows the sample holds, and each model's seconds per text."""

    small: Inputs
    large: Inputs
    sample: np.ndarray  # pool rows of the calibration sample (the student's training texts)
    seconds: tuple[float, float]

    @property
    def ratio(self) -> float:
        return self.seconds[1] / self.seconds[0]

    @property
    def held(self) -> np.ndarray:
        """Pool rows outside the sample: where the pool's figures are read."""
        return np.setdiff1d(np.arange(len(self.small.pool_y)), self.sample)


MODELS = ("embedded", "embedded-1.5b")
TIMED = 100  # test texts each model answers, timed, in the run


def measure(source: datasets.Source, pool_size: int, test_size: int) -> Measured:
    """Both models' inputs on a benchmark source (backend/bench/datasets.py) and their seconds per text, each timed
    on the test split's first TIMED texts as it serves them: the 0.5B with its hidden state, the 1.5B without."""
    from backend.bench import simulation
    from backend.labelstudio import schema as schemas
    from backend.serving.service import load_predictor
    from backend.settings import Settings

    config = schemas.parse_config(source.config)
    timed = list(source.test["text"])[:TIMED]
    read, seconds = [], []
    for i, model in enumerate(MODELS):
        predictor = load_predictor(Settings(llm_model=model, guidelines=source.guidelines))
        inputs = simulation.load_inputs(pool_size, test_size, judge_variants=(), predictor=predictor, source=source)
        layer = int(inputs.info.get("llm_state_layer") or 0)
        predictor.answers(config, timed[:4])  # the prompt's prefix, once
        started = time.perf_counter()
        if i == 0 and layer:
            predictor.answers_and_states(config, timed, layer)
        else:
            predictor.answers(config, timed)
        seconds.append((time.perf_counter() - started) / len(timed))
        read.append(inputs)
        del predictor
    pool_texts = list(source.pool["text"])
    return Measured(read[0], read[1], np.array(simulation.sample_rows(pool_texts)), (seconds[0], seconds[1]))


def macro_f1(y: np.ndarray, probs: np.ndarray) -> float:
    return float(f1_score(y, probs.argmax(axis=1), labels=np.unique(y), average="macro", zero_division=0))


def margin(probs: np.ndarray) -> np.ndarray:
    """A single-choice question's margins (Schema.margin)."""
    return Schema.of_labels([str(k) for k in range(probs.shape[1])]).margin(probs)


def refine(first: np.ndarray, second: np.ndarray, below: float) -> np.ndarray:
    """The first answers with the second model's where their margin lies below `below` (Cascade.refine)."""
    out = first.copy()
    unsure = margin(first) < below
    out[unsure] = second[unsure]
    return out


def taught(m: Measured, c: float) -> tuple[students.Student, np.ndarray]:
    """The student fitted on the sample as the cascade fits it, and its answers out of fold there."""
    assert m.small.pool_h is not None
    states, answers = m.small.pool_h[m.sample], m.large.pool_llm[m.sample]
    layer = int(m.small.info.get("llm_state_layer") or 0)
    fitted = students.Student.fit(states, answers, layer, c)
    if fitted is None:
        raise ValueError("the 1.5B gave one label only on the sample: no student to fit")
    return fitted, students.out_of_fold(states, answers, layer, c)


def served(m: Measured, reader: students.Student, held_out: np.ndarray, share: float) -> Inputs:
    """The inputs the loop reads under the cascade at `share`: served, the student's answers with the 1.5B's below
    the threshold; the 0.5B's states and own answers for trained models; no LLM-alone alternatives (Cascade.shifts)."""
    assert m.small.pool_h is not None and m.small.test_h is not None
    below = float(np.quantile(margin(held_out), share)) if share < 1 else np.inf
    return replace(
        m.small,
        pool_llm=refine(reader.apply(m.small.pool_h), m.large.pool_llm, below),
        test_llm=refine(reader.apply(m.small.test_h), m.large.test_llm, below),
        shifts={},
        pool_read=m.small.pool_llm,
        test_read=m.small.test_llm,
    )


def point(m: Measured, inputs: Inputs, share: float, cost: float, seeds: Sequence[int] = ()) -> Point:
    from backend.bench import simulation

    after = None
    if seeds:
        after = simulation.learning_curve(inputs, simulation.SERVED_SETUP, seeds, (CURVE_LABELS,)).get(
            str(CURVE_LABELS)
        )
    return Point(
        share,
        round(macro_f1(inputs.pool_y[m.held], inputs.pool_llm[m.held]), 4),
        round(macro_f1(inputs.test_y, inputs.test_llm), 4),
        round(cost, 3),
        None if after is None else round(after, 4),
    )


def baselines(m: Measured, seeds: Sequence[int] = ()) -> dict[str, Point]:
    """The 0.5B alone and the 1.5B alone, each as it serves (its own states for the loop)."""
    return {"0.5b": point(m, m.small, 0.0, 1.0, seeds), "1.5b": point(m, m.large, 1.0, 1.0 * m.ratio, seeds)}


def curve(m: Measured, c: float, shares: Sequence[float] = SHARES, seeds: Sequence[int] = ()) -> list[Point]:
    """The cascade at each share, from the student alone (share 0) to the 1.5B on every text (share 1)."""
    reader, held_out = taught(m, c)
    return [point(m, served(m, reader, held_out, s), s, 1 + s * m.ratio, seeds) for s in (0.0, *shares, 1.0)]


def choose_c(student_alone: Mapping[float, Sequence[float]]) -> float:
    """The readout's C: the best mean pool macro-F1 of the student alone over the corpora; the smaller on a tie."""
    means = {c: float(np.mean(f1s)) for c, f1s in student_alone.items()}
    return max(sorted(means), key=lambda c: means[c])


def choose_share(curves: Sequence[list[Point]], small: Sequence[Point]) -> float:
    """The default share, from the pools alone: the smallest share of SHARES whose mean pool macro-F1 keeps KEEP of
    the 1.5B's mean gain over the 0.5B (`small`, one per corpus), among those costing at most MOST_COST; else the one
    within it with the best mean; the smallest when the 1.5B gains nothing."""
    shares = [p.share for p in curves[0]]
    mean = {s: float(np.mean([c[i].pool_macro_f1 for c in curves])) for i, s in enumerate(shares)}
    cost = {s: float(np.mean([c[i].cost for c in curves])) for i, s in enumerate(shares)}
    base = float(np.mean([p.pool_macro_f1 for p in small]))
    gain = mean[1.0] - base
    within = [s for s in shares if 0 < s < 1 and cost[s] <= MOST_COST]
    if not within:
        return min(s for s in shares if 0 < s < 1)
    if gain <= 0:
        return min(within)
    keeping = [s for s in within if mean[s] - base >= KEEP * gain]
    return min(keeping) if keeping else max(within, key=lambda s: mean[s])


def as_dict(points: list[Point]) -> list[CascadePoint]:
    return [cast(CascadePoint, asdict(p)) for p in points]  # the same fields


def served_inputs(
    predictor: Cascade,
    inputs: Inputs,
    config: Config,
    *,
    pool_texts: list[str],
    test_texts: list[str],
    embed: Callable[[list[str]], np.ndarray],
) -> tuple[Inputs, dict]:
    """A simulation's inputs (simulation.load_inputs, read with the cascade's first model) as the cascade serves a
    project of these texts: the pool measured (the second model's calibration, the student and the threshold), the
    student's answers served with the second model's where they are unsure, the first model's own read by trained
    models; the LLM-alone alternatives dropped, as Cascade.shifts drops them. Also what the refinement did, for the
    results."""
    measured = predictor.measure_pool(config, pool_texts, embed)
    name = config.primary.from_name
    taught = measured.student
    same = taught is not None and taught.layer == inputs.info.get("llm_state_layer")

    def answered(texts: list[str], llm: np.ndarray, states: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The answers that decide (the student's) and the served ones."""
        if taught is None:
            return llm, predictor.refine(config, texts, {name: llm}, measured)[name]
        if not same or states is None:
            states = predictor.answers_and_states(config, texts, taught.layer, measured)[1]
        return taught.apply(states), predictor.refine(config, texts, {name: llm}, measured, states)[name]

    pool_first, pool_llm = answered(pool_texts, inputs.pool_llm, inputs.pool_h)
    test_first, test_llm = answered(test_texts, inputs.test_llm, inputs.test_h)
    info = {
        "models": [predictor.source.name, predictor.second.source.name],
        "model_version": predictor.version(config, measured),
        "share": predictor.share,
        "unsure_below": measured.unsure_below,
        "student": taught is not None,
        "refined_pool": round(float((pool_llm != pool_first).any(axis=1).mean()), 4),
        "refined_test": round(float((test_llm != test_first).any(axis=1).mean()), 4),
    }
    served = replace(
        inputs, pool_llm=pool_llm, test_llm=test_llm, shifts={}, pool_read=inputs.pool_llm, test_read=inputs.test_llm
    )
    return served, info
