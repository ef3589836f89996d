"""Faults: kill -9 while models are being saved, and Label Studio unreachable during training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
from helpers import CONFIG, ROOT, tiny_predictor

from backend.labelstudio import schema as schemas
from backend.loop.model_store import ModelStore
from backend.serving.service import Service
from backend.settings import Settings

WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from backend.loop.model_store import ModelStore
    store = ModelStore(sys.argv[1], "1")
    n = len(store.versions())
    while True:
        n += 1
        # Big enough that a write takes a while, so kills land inside writes too.
        model = {"n": n, "weights": np.full(2_000_000, n, dtype=np.float64)}
        store.add(f"v-r{n}", model, {"labels": n}, promote=n % 3 != 0)
        print(n, flush=True)
    """
)


def test_kill_9_while_saving_never_leaves_a_broken_store(tmp_path):
    for round_ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        proc.stdout.readline()  # at least one version written this round
        time.sleep(0.05 + 0.07 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        store = ModelStore(tmp_path, "1")
        versions = store.versions()
        current, model = store.current()
        promoted = [v["version"] for v in versions if v["promoted"]]
        assert current == promoted[-1]
        assert model["n"] == int(current.split("-r")[1]) and np.all(model["weights"] == model["n"])
        for name in promoted:  # every promoted artifact is whole
            store.load(name)
    # Temporary files of interrupted writes may remain; they are never read. Lock files are empty.
    assert all(p.suffix in (".tmp", ".lock", ".json", ".npz") for p in (tmp_path / "projects").rglob("*.*"))


def test_label_studio_unreachable_fails_the_run_visibly_and_predictions_go_on(tmp_path, caplog):
    settings = Settings(
        data_dir=tmp_path, label_studio_url="http://127.0.0.1:9", label_studio_api_key="k", ls_retries=2
    )
    service = Service(settings, loader=lambda s: tiny_predictor())
    service.start()
    service.predictor(wait=60)
    started = time.monotonic()
    assert service.loop.request_training("4") == "started"
    assert service.loop.training.wait("4", timeout=120)
    assert time.monotonic() - started >= 3.0  # backed off 1 s, then 2 s
    metrics = service.metrics.render().decode()
    assert 'backend_training_runs_total{result="failed"} 1.0' in metrics
    assert "backend_label_studio_errors_total 3.0" in metrics
    assert "training for project 4 failed" in caplog.text and "retrying in" in caplog.text
    results, skipped, _ = service.loop.predict("4", schemas.parse(CONFIG), [{"id": 1, "data": {"text": "fine"}}])
    assert results[0]["result"] and not skipped
    assert json.loads(json.dumps(results))  # still a plain JSON answer
