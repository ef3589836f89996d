"""How fast the project page answers: a registry of synthetic training runs, the page rendered as the server does.

The runs are made up (macro-F1 rising with the labels, some promoted, gold answers and doubted labels noted), written
through the model store as a training run writes them; the page is then asked for through the Flask app (auth,
routing, the registry read, the plot), first once cold and then `repeats` times.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.loop.model_store import ModelStore

QUESTIONS = ("sentiment", "aspects", "spoiler")


@dataclass(frozen=True)
class PageTiming:
    runs: int
    questions: int
    first_ms: float  # the first request: imports, template and matplotlib warmed
    median_ms: float
    worst_ms: float
    bytes: int


def write_runs(data_dir: Path, project: str, runs: int, questions: tuple[str, ...] = QUESTIONS, seed: int = 0) -> None:
    """`runs` training records for `questions` in the project's registry, as training.run writes them."""
    rng = np.random.default_rng(seed)
    store = ModelStore(data_dir, project)
    for run in range(1, runs + 1):
        labels = 10 * run
        per = {}
        for q in questions:
            llm = 0.55 + rng.normal(0, 0.02)
            cv = min(0.95, llm + 0.25 * (1 - np.exp(-labels / 150)) + rng.normal(0, 0.01))
            promoted = run % 3 == 1
            per[q] = {
                "labels": labels,
                "result": "promoted" if promoted else "kept",
                "recipe": "blend",
                "cv_macro_f1": round(cv, 4),
                "incumbent_macro_f1": round(cv - 0.01, 4),
                "llm_macro_f1": round(llm, 4),
                "label_issues": int(rng.integers(0, 5)),
                # below 50 labels a promoted model was self-trained (backend/learning/self_training.py)
                **(
                    {"self_training": {"unlabeled": 400, "pseudo_labels": labels, "per_label": {"Positive": labels}}}
                    if promoted and labels < 50
                    else {}
                ),
                "routing": {
                    "model": {
                        "threshold": 0.9,
                        "target": 0.95,
                        "confidence": 0.95,
                        "support": labels,
                        "accuracy": 0.97,
                        "lower_bound": 0.951,
                    },
                    # the LLM alone: no threshold reaches the target
                    "llm": {
                        "threshold": None,
                        "target": 0.95,
                        "confidence": 0.95,
                        "support": 0,
                        "accuracy": None,
                        "lower_bound": None,
                    },
                },
            }
        record = {
            "labels": labels,
            "questions": per,
            "routing": per[questions[0]]["routing"],  # the first question's, as training.run copies it
            "result": "promoted" if run % 3 == 1 else "kept",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": 1.0,
            "gold": [
                {
                    "annotator": f"user:{a}",
                    "n_gold": run,
                    "n_correct": run,
                    "accuracy": 1.0,
                    "latest_window": 1.0,
                    "flagged": False,
                    "reasons": [],
                }
                for a in range(1, 6)
            ],
            "review_tab": {"id": 4, "tasks": 3},
        }
        store.add(f"llm-r{run}", None, record, False)


def time_page(client, project: str, repeats: int, auth: dict | None = None) -> tuple[list[float], int]:
    """Milliseconds per request of the project's page through a Flask test client, and the page's size."""
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        answer = client.get(f"/projects/{project}", headers=auth or {})
        times.append(1000 * (time.perf_counter() - started))
        if answer.status_code != 200:
            raise RuntimeError(f"the page answered HTTP {answer.status_code}: {answer.get_data(as_text=True)[:200]}")
        size = len(answer.get_data())
    return times, size


def measure(client, project: str, runs: int, questions: int, repeats: int) -> PageTiming:
    first, _ = time_page(client, project, 1)
    times, size = time_page(client, project, repeats)
    return PageTiming(
        runs, questions, round(first[0], 1), round(statistics.median(times), 1), round(max(times), 1), size
    )
