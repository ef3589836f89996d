"""Label issues measured on planted noise (labelloop bench-label-issues).

One run, per seed: draw `n` labeled reviews from the simulation's pool (the corpus labels are the truth), flip a
fraction of them, judge the noisy labels as backend/quality/label_issues.py does (the served setup's out-of-fold
probabilities averaged with the LLM's, cleanlab's filter), and score the flags against the flips (precision, recall, F1). Then fit the
served setup on the clean, the noisy and the cleaned labels (flagged ones dropped) and measure macro-F1 on the
simulation's test split: how much of what the noise cost does cleaning win back.

Two kinds of noise: "uniform" (a flipped label becomes any other label, equally likely) and "to_neutral" (class-
conditional, as tired annotators do: a flipped Positive or Negative becomes Neutral with probability
TO_NEUTRAL, the opposite polarity otherwise; a flipped Neutral becomes Positive or Negative).

A simulated team (`team`): three annotators label every review with probability COVERAGE each (at least one per
review); two are careful (ACCURACY_CAREFUL), one careless (ACCURACY_CARELESS), their mistakes uniform. Consensus
by majority vote against CROWDLAB (cleanlab.multiannotator), whose pred_probs are the served setup's out-of-fold
probabilities on the majority labels; reported: each annotator's CROWDLAB quality (the careless one should rank
last), each consensus's accuracy against the truth, and the served setup's macro-F1 trained on each.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from backend.bench.results import NoiseResults, NoiseRuns
from backend.bench.simulation import SETUPS, Inputs, fit_setup, macro_f1, out_of_fold_setup
from backend.errors import LabelloopError
from backend.quality import label_issues

MODES = ("uniform", "to_neutral")
TO_NEUTRAL = 0.8
NEUTRAL = "Neutral"
COVERAGE = 0.7
ACCURACY_CAREFUL = (0.95, 0.9)
ACCURACY_CARELESS = 0.6
TEAM = ("careful_1", "careful_2", "careless")


class NoiseBenchError(LabelloopError, ValueError):
    """Settings the benchmark cannot run with; one line."""

    http_status = 400


def plant(
    y: np.ndarray, rate: float, mode: str, labels: Sequence[str], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, which were flipped): exactly round(rate * len(y)) labels flipped, chosen at random."""
    if mode not in MODES:
        raise NoiseBenchError(f"unknown noise {mode!r}; choose from {', '.join(MODES)}")
    labels = list(labels)
    n_labels = len(labels)
    flipped = np.zeros(len(y), dtype=bool)
    flipped[rng.choice(len(y), size=round(rate * len(y)), replace=False)] = True
    noisy = y.copy()
    neutral = labels.index(NEUTRAL) if NEUTRAL in labels else None
    for i in np.flatnonzero(flipped):
        others = [c for c in range(n_labels) if c != y[i]]
        if mode == "to_neutral" and neutral is not None and y[i] != neutral and rng.random() < TO_NEUTRAL:
            noisy[i] = neutral
        elif mode == "to_neutral" and neutral is not None and y[i] != neutral:
            noisy[i] = rng.choice([c for c in others if c != neutral])
        else:
            noisy[i] = rng.choice(others)
    return noisy, flipped


def _fit_f1(inputs: Inputs, setup: str, rows: np.ndarray, y: np.ndarray) -> float:
    pool_v, test_v = inputs.vectors(setup)
    model = fit_setup(setup, pool_v[rows], inputs.pool_llm[rows], y, inputs.n_labels, split=inputs.split)
    return macro_f1(inputs.test_y, model.predict_proba(test_v, inputs.test_llm), inputs.n_labels)


def _oof(inputs: Inputs, setup: str, rows: np.ndarray, y: np.ndarray) -> np.ndarray:
    pool_v, _ = inputs.vectors(setup)
    return out_of_fold_setup(setup, pool_v[rows], inputs.pool_llm[rows], y, inputs.n_labels, split=inputs.split)


def noise_run(inputs: Inputs, setup: str, n: int, rate: float, mode: str, seed: int) -> dict:
    """One seed of one noise setting: the flags' precision/recall/F1 and the three macro-F1s."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(inputs.pool_y), size=n, replace=False)
    truth = inputs.pool_y[rows]
    noisy, flipped = plant(truth, rate, mode, inputs.labels, rng)
    issues, _ = label_issues.flag(noisy, label_issues.judging(_oof(inputs, setup, rows, noisy), inputs.pool_llm[rows]))
    hits = int((issues & flipped).sum())
    precision = hits / issues.sum() if issues.sum() else 0.0
    recall = hits / flipped.sum() if flipped.sum() else 0.0
    keep = ~issues
    return {
        "seed": seed,
        "flipped": int(flipped.sum()),
        "flagged": int(issues.sum()),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "macro_f1_clean": _fit_f1(inputs, setup, rows, truth),
        "macro_f1_noisy": _fit_f1(inputs, setup, rows, noisy),
        "macro_f1_cleaned": _fit_f1(inputs, setup, rows[keep], noisy[keep]),
    }


def _mean(runs: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def summarize(runs: list[dict]) -> NoiseRuns:
    clean, noisy, cleaned = (_mean(runs, key) for key in ("macro_f1_clean", "macro_f1_noisy", "macro_f1_cleaned"))
    cost = clean - noisy
    return {
        "precision": _mean(runs, "precision"),
        "recall": _mean(runs, "recall"),
        "f1": _mean(runs, "f1"),
        "macro_f1_clean": clean,
        "macro_f1_noisy": noisy,
        "macro_f1_cleaned": cleaned,
        "flagged": _mean(runs, "flagged"),
        "recovered_fraction": (cleaned - noisy) / cost if cost > 0 else None,
        "f1_min": min(r["f1"] for r in runs),
        "seeds": runs,
    }


def _annotate(truth: np.ndarray, n_labels: int, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    wrong = rng.random(len(truth)) >= accuracy
    shift = rng.integers(1, n_labels, size=len(truth))
    return np.where(wrong, (truth + shift) % n_labels, truth)


def _majority(matrix: np.ndarray, n_labels: int, tie_break: np.ndarray) -> np.ndarray:
    counts = np.stack([(matrix == c).sum(axis=1) for c in range(n_labels)], axis=1).astype(float)
    return (counts + 1e-3 * tie_break).argmax(axis=1)  # a tie goes to the label the model finds likelier


def team_run(inputs: Inputs, setup: str, n: int, seed: int) -> dict:
    """One simulated team of three: CROWDLAB's annotator qualities and both consensuses, against the truth."""
    from cleanlab.multiannotator import get_label_quality_multiannotator

    rng = np.random.default_rng(10_000 + seed)
    rows = rng.choice(len(inputs.pool_y), size=n, replace=False)
    truth = inputs.pool_y[rows]
    k = inputs.n_labels
    accuracies = (*ACCURACY_CAREFUL, ACCURACY_CARELESS)
    given = np.stack([_annotate(truth, k, a, rng) for a in accuracies], axis=1).astype(float)
    seen = rng.random(given.shape) < COVERAGE
    seen[~seen.any(axis=1), rng.integers(0, 3)] = True
    given[~seen] = np.nan
    majority = _majority(np.where(seen, given, -1), k, inputs.pool_llm[rows])
    oof = _oof(inputs, setup, rows, majority)
    frame = pd.DataFrame(given, columns=list(TEAM))
    result = get_label_quality_multiannotator(frame, oof, verbose=False)
    crowdlab = result["label_quality"]["consensus_label"].to_numpy().astype(int)
    stats = result["annotator_stats"]
    quality = {str(a): float(stats.loc[a, "annotator_quality"]) for a in TEAM}
    return {
        "seed": seed,
        "annotator_quality": quality,
        "careless_ranked_last": min(quality, key=lambda a: quality[a]) == "careless",
        "consensus_accuracy": {
            "majority": float((majority == truth).mean()),
            "crowdlab": float((crowdlab == truth).mean()),
        },
        "macro_f1": {
            "majority": _fit_f1(inputs, setup, rows, majority),
            "crowdlab": _fit_f1(inputs, setup, rows, crowdlab),
            "truth": _fit_f1(inputs, setup, rows, truth),
        },
        "consensus_macro_f1_vs_truth": {
            "majority": float(f1_score(truth, majority, average="macro")),
            "crowdlab": float(f1_score(truth, crowdlab, average="macro")),
        },
    }


def bench(
    inputs: Inputs, setup: str, n: int = 1000, rate: float = 0.1, seeds: Sequence[int] = range(3)
) -> NoiseResults:
    """Every noise mode and the team, over `seeds`: the results.json of labelloop bench-label-issues."""
    if setup not in SETUPS:
        raise NoiseBenchError(f"unknown model kind {setup!r}; choose from {', '.join(SETUPS)}")
    if not 0 < rate < 1:
        raise NoiseBenchError(f"the noise rate must lie strictly between 0 and 1, got {rate}")
    if n > len(inputs.pool_y) or n < 50:
        raise NoiseBenchError(f"labels ({n}) must be between 50 and the pool size ({len(inputs.pool_y)})")
    seeds = list(seeds)
    noise = {mode: summarize([noise_run(inputs, setup, n, rate, mode, s) for s in seeds]) for mode in MODES}
    teams = [team_run(inputs, setup, n, s) for s in seeds]
    return {
        "config": {
            **inputs.info,  # first: the bench's own "labels" (how many) is not the label names
            "kind": setup,
            "labels": n,
            "rate": rate,
            "seeds": seeds,
            "to_neutral": TO_NEUTRAL,
            "team": dict(zip(TEAM, (*ACCURACY_CAREFUL, ACCURACY_CARELESS))),
            "coverage": COVERAGE,
            "filter_by": label_issues.FILTER_BY,
        },
        "noise": noise,
        "team": {
            "careless_ranked_last": sum(t["careless_ranked_last"] for t in teams),
            "annotator_quality": {a: float(np.mean([t["annotator_quality"][a] for t in teams])) for a in TEAM},
            "consensus_accuracy": {
                m: float(np.mean([t["consensus_accuracy"][m] for t in teams])) for m in ("majority", "crowdlab")
            },
            "macro_f1": {
                m: float(np.mean([t["macro_f1"][m] for t in teams])) for m in ("majority", "crowdlab", "truth")
            },
            "seeds": teams,
        },
    }


def table(results: NoiseResults) -> str:
    cfg = results["config"]
    lines = [
        f"{cfg['labels']} labels, {round(100 * cfg['rate'])}% flipped, model {cfg['kind']}, "
        f"{len(cfg['seeds'])} seeds (means)",
        "",
        f"  {'noise':11} {'flagged':>8} {'precision':>9} {'recall':>7} {'F1':>6} {'F1 min':>7}   "
        f"{'macro-F1: clean':>15} {'noisy':>6} {'cleaned':>8} {'recovered':>10}",
    ]
    for mode, s in results["noise"].items():
        rec = "-" if s["recovered_fraction"] is None else f"{s['recovered_fraction']:.2f}"
        lines.append(
            f"  {mode:11} {s['flagged']:8.0f} {s['precision']:9.3f} {s['recall']:7.3f} {s['f1']:6.3f} "
            f"{s['f1_min']:7.3f}   {s['macro_f1_clean']:15.3f} {s['macro_f1_noisy']:6.3f} "
            f"{s['macro_f1_cleaned']:8.3f} {rec:>10}"
        )
    t = results["team"]
    n = len(t["seeds"])
    quality = ", ".join(f"{a} {q:.3f}" for a, q in t["annotator_quality"].items())
    lines += [
        "",
        f"team of three (CROWDLAB annotator quality): {quality}; careless ranked last in "
        f"{t['careless_ranked_last']}/{n} seeds",
        f"  consensus accuracy: majority {t['consensus_accuracy']['majority']:.3f}, "
        f"CROWDLAB {t['consensus_accuracy']['crowdlab']:.3f}",
        f"  served model's macro-F1 trained on: majority {t['macro_f1']['majority']:.3f}, CROWDLAB "
        f"{t['macro_f1']['crowdlab']:.3f}, the truth {t['macro_f1']['truth']:.3f}",
    ]
    return "\n".join(lines)
