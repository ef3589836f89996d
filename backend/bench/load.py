"""A bounded load test: concurrent clients mixing /predict batches and webhooks against one backend.

Each client loops until the time is up: four times in five a /predict of 1-50 reviews never sent before (so the
per-text caches cannot flatter the figures), otherwise a webhook. The worker's resident memory is sampled every
second from /proc, so a leak shows as a slope.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from backend import corpus
from backend.dev import processes
from backend.paths import DEMO_CONFIG

LS_PREDICT_TIMEOUT = 100.0  # Label Studio's ML_TIMEOUT_PREDICT: a later answer is lost


@dataclass
class Sample:
    route: str
    started: float
    seconds: float
    status: int
    tasks: int = 0
    skipped: int = 0


@dataclass
class LoadResult:
    seconds: float
    samples: list[Sample]
    memory: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, RSS MB)

    def summary(self) -> dict:
        out: dict = {"seconds": round(self.seconds, 1)}
        for route in sorted({s.route for s in self.samples}):
            rows = [s for s in self.samples if s.route == route]
            lat = np.array([s.seconds for s in rows])
            out[route] = {
                "requests": len(rows),
                "errors": sum(1 for s in rows if s.status >= 500 or s.status == 0),
                "p50": round(float(np.percentile(lat, 50)), 3),
                "p95": round(float(np.percentile(lat, 95)), 3),
                "p99": round(float(np.percentile(lat, 99)), 3),
                "max": round(float(lat.max()), 3),
                "over_100s": int((lat > LS_PREDICT_TIMEOUT).sum()),
            }
        predicted = [s for s in self.samples if s.route == "/predict" and s.status == 200]
        done = sum(s.tasks - s.skipped for s in predicted)
        out["tasks_predicted"] = done
        out["tasks_skipped"] = sum(s.skipped for s in predicted)
        out["tasks_per_second"] = round(done / self.seconds, 2)
        if self.memory:
            mb = np.array([m for _, m in self.memory])
            t = np.array([s for s, _ in self.memory])
            half = len(mb) // 2
            out["rss_mb"] = {
                "start": round(float(mb[0]), 1),
                "peak": round(float(mb.max()), 1),
                "end": round(float(mb[-1]), 1),
                # A leak is a steady slope; a warm-up step at the start is not, so fit the second half only.
                "slope_mb_per_min": round(float(np.polyfit(t[half:], mb[half:], 1)[0] * 60), 2) if half > 2 else 0.0,
            }
        return out


def run(
    url: str,
    *,
    clients: int = 16,
    seconds: float = 60.0,
    max_batch: int = 50,
    webhook_share: float = 0.2,
    pid: int | None = None,
    seed: int = 0,
    auth: tuple[str, str] | None = None,
) -> LoadResult:
    config = DEMO_CONFIG.read_text()
    texts = corpus.load()["text"].sample(frac=1.0, random_state=seed).tolist()
    lock = threading.Lock()
    samples: list[Sample] = []
    memory: list[tuple[float, float]] = []
    t0 = time.monotonic()
    stop_at = t0 + seconds
    stopped = threading.Event()

    def next_texts(n: int) -> list[str]:
        with lock:
            taken = texts[:n]
            del texts[:n]
        return taken

    def client(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        session = requests.Session()
        session.auth = auth
        while time.monotonic() < stop_at:
            started = time.monotonic()
            if rng.random() < webhook_share:
                route, n = "/webhook", 0
                body: dict[str, Any] = {
                    "action": rng.choice(["ANNOTATION_CREATED", "PROJECT_UPDATED"]),
                    "project": {"id": 1},
                }
            else:
                route, n = "/predict", rng.randint(1, max_batch)
                tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(next_texts(n))]
                body = {"tasks": tasks, "label_config": config, "project": f"1.{k}"}
            try:
                answer = session.post(url + route, json=body, timeout=LS_PREDICT_TIMEOUT + 60)
                status = answer.status_code
                skipped = len(answer.json().get("skipped", [])) if status == 200 and route == "/predict" else 0
            except requests.RequestException:
                status, skipped = 0, 0
            with lock:
                samples.append(Sample(route, started - t0, time.monotonic() - started, status, n, skipped))

    def sampler() -> None:
        while not stopped.is_set():
            if pid:
                memory.append((time.monotonic() - t0, processes.memory_mb(pid)))
            stopped.wait(1.0)

    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stopped.set()
    watcher.join()
    return LoadResult(time.monotonic() - t0, samples, memory)


def plot(result: LoadResult, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for route, colour in (("/predict", "tab:blue"), ("/webhook", "tab:orange")):
        rows = [s for s in result.samples if s.route == route]
        top.scatter([s.started + s.seconds for s in rows], [s.seconds for s in rows], s=8, c=colour, label=route)
    top.axhline(LS_PREDICT_TIMEOUT, color="red", lw=1, ls="--", label="Label Studio's 100 s limit")
    top.set_yscale("log")
    top.set_ylabel("latency, s (at answer time)")
    top.legend(loc="lower right", fontsize=8)
    if result.memory:
        bottom.plot([t for t, _ in result.memory], [m for _, m in result.memory], color="tab:green")
    bottom.set_ylabel("worker RSS, MB")
    bottom.set_xlabel("seconds since start")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
