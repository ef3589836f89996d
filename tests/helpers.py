"""Shared test helpers: a Predictor on the tiny model, a free port, a gunicorn server on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

import tiny_model
from backend.llm import guidelines as guides
from backend.llm.local import LLMScorer
from backend.llm.weights import ModelSource
from backend.llm.predictor import Predictor

ROOT = Path(__file__).resolve().parent.parent
CONFIG = (ROOT / "label_config" / "sentiment.xml").read_text()
VENV_BIN = Path(sys.executable).parent


def tiny_predictor(calibration: str = "contextual", guidelines_path: Path | None = None, **scorer_kwargs) -> Predictor:
    scorer = LLMScorer(tiny_model.model(), tiny_model.tokenizer(), **scorer_kwargs)
    source = ModelSource(path="tiny", identity="test:tiny-qwen2", name="tiny-qwen2")
    return Predictor(scorer, source, guides.load(guidelines_path), calibration=calibration, calibration_dir=None)


def wait_for(what: str, check, timeout: float = 240.0, every: float = 1.0):
    """check()'s first truthy value, polled every `every` s; an AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, wait: float = 120.0):
    """Start the backend exactly as `make serve` does, on 127.0.0.1, and stop it afterwards."""
    port = free_port()
    full_env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), **env}
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "python:backend.serving.gunicorn_conf", "backend.serving.wsgi:app"],
            cwd=ROOT,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or still importing
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"backend did not become healthy; log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
