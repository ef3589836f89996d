"""The backend on each LLM engine, side by side: the same reviews through /predict under gunicorn, one engine at a time.

Per engine: reviews per second over HTTP, request latency, the peak memory of the backend's worker and of the LLM
server (if any), accuracy and macro-F1 against the corpus labels, and how often it picks the same label as the
first engine. Every engine reads the same calibration file, so the figures compare engines, not calibrations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import requests
from sklearn.metrics import cohen_kappa_score
from tqdm.auto import tqdm

from backend.bench import evaluation
from backend.dev import processes


@dataclass(frozen=True)
class Engine:
    name: str
    env: dict[str, str]  # the backend's settings for this engine
    server_pid: Callable[[], int | None] = lambda: None  # the LLM server's process, for its memory


def run_engine(engine: Engine, texts: Sequence[str], config: str, batch: int, port: int, log_dir: Path) -> dict:
    """Serve the texts through /predict on one engine; labels and figures."""
    log_path = log_dir / f"backend-{engine.name}.log"
    # A first start may load the model from disk for minutes on a CPU.
    with processes.serving(engine.env, log_path, port=port, timeout=300.0) as (url, proc):
        version = requests.post(f"{url}/setup", json={"schema": config}, timeout=600).json()["model_version"]
        requests.post(
            f"{url}/predict", json={"tasks": [{"data": {"text": "warm-up"}}], "label_config": config}, timeout=600
        ).raise_for_status()
        labels, latencies = [], []
        started = time.perf_counter()
        for start in tqdm(range(0, len(texts), batch), desc=f"/predict on {engine.name}", unit="request"):
            tasks = [{"id": start + i, "data": {"text": t}} for i, t in enumerate(texts[start : start + batch])]
            sent = time.perf_counter()
            r = requests.post(f"{url}/predict", json={"tasks": tasks, "label_config": config}, timeout=900)
            r.raise_for_status()
            latencies.append(time.perf_counter() - sent)
            labels += [x["result"][0]["value"]["choices"][0] if x["result"] else "" for x in r.json()["results"]]
        seconds = time.perf_counter() - started
        server = engine.server_pid()
        return {
            "model_version": version,
            "reviews_per_s": round(len(texts) / seconds, 3),
            "seconds": round(seconds, 1),
            "request_p50_s": round(float(np.percentile(latencies, 50)), 2),
            "request_max_s": round(float(max(latencies)), 2),
            "backend_peak_rss_mb": round(processes.memory_mb(*processes.worker_pids(proc.pid), peak=True)),
            "server_peak_rss_mb": round(processes.memory_mb(server, peak=True)) if server else 0,
            "labels": labels,
        }


def compare(results: dict[str, dict], truth: Sequence[str], labels: Sequence[str]) -> dict[str, dict]:
    """Quality per engine, and agreement with the first engine (the reference)."""
    reference = next(iter(results.values()))["labels"]
    out = {}
    for name, r in results.items():
        figures = {k: v for k, v in r.items() if k != "labels"}
        figures.update(evaluation.report(truth, r["labels"], labels))
        figures["same_label_as_first"] = round(float(np.mean([a == b for a, b in zip(r["labels"], reference)])), 4)
        figures["kappa_with_first"] = round(float(cohen_kappa_score(r["labels"], reference)), 4)
        out[name] = figures
    return out
