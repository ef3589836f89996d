"""Test helpers shared by tests/unit/test_finish_simulation.py and the tiers that build on it."""

from __future__ import annotations

import subprocess

import numpy as np
import warm
from helpers import ROOT

from backend.bench import simulation
from support.simulation import synthetic_inputs

SCRIPT = warm.labelloop("simulate-finish")
CONTRACT = ("human_fraction", "auto_accuracy_min", "finished_accuracy_mean", "promise_kept")


def finishing_inputs(n_pool: int = 240, seed: int = 0) -> simulation.Inputs:
    """synthetic_inputs with an LLM that is right 90% of the time and unsure when wrong, so a threshold at 0.9
    passes within a few dozen labels, as the real one does at 0.95 on a larger pool."""
    inputs = synthetic_inputs(n_pool=n_pool, n_test=30, seed=seed)
    rng = np.random.default_rng(seed + 1)
    y = inputs.pool_y
    right = rng.random(len(y)) < 0.9
    guess = np.where(right, y, (y + rng.integers(1, 3, len(y))) % 3)
    sharpness = np.where(right, rng.uniform(1.0, 6.0, len(y)), rng.uniform(0.2, 1.5, len(y)))
    logits = sharpness[:, None] * np.eye(3)[guess] + 0.2 * rng.standard_normal((len(y), 3))
    p = np.exp(logits)
    inputs.pool_llm = p / p.sum(axis=1, keepdims=True)
    return inputs


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return warm.run([*SCRIPT, *args], timeout=timeout, cwd=ROOT)
