"""Test helpers shared by tests/unit/test_simulation.py and the tiers that build on it."""

from __future__ import annotations

import numpy as np

from backend.bench import simulation
from backend.bench.simulation import Inputs


def synthetic_inputs(n_pool: int = 200, n_test: int = 90, dim: int = 16, seed: int = 0) -> Inputs:
    """Three classes around random centres; an LLM that is right about 80% of the time; random judges."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, dim))

    def part(n):
        y = rng.choice(3, size=n, p=[0.5, 0.35, 0.15])
        x = (centres[y] + 1.2 * rng.standard_normal((n, dim))).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        guess = np.where(rng.random(n) < 0.8, y, rng.integers(0, 3, n))
        logits = 2.0 * np.eye(3)[guess] + 0.5 * rng.standard_normal((n, 3))
        p = np.exp(logits)
        return x, p / p.sum(axis=1, keepdims=True), y

    px, pl, py = part(n_pool)
    tx, tl, ty = part(n_test)
    judged = {name: rng.normal(size=n_pool) for name in simulation.JUDGED}
    # Hidden states: another noisy view of the same classes, unnormalised and with a few huge dimensions, as an
    # LLM's are.
    scale = np.ones(2 * dim, dtype=np.float32)
    scale[:2] = 50.0
    ph = (np.hstack([centres[py], rng.standard_normal((n_pool, dim))]) + rng.standard_normal((n_pool, 2 * dim))) * scale
    th = (np.hstack([centres[ty], rng.standard_normal((n_test, dim))]) + rng.standard_normal((n_test, 2 * dim))) * scale
    return Inputs(
        ("Positive", "Negative", "Neutral"),
        px,
        pl,
        py,
        tx,
        tl,
        ty,
        ph.astype(np.float32),
        th.astype(np.float32),
        judged,
    )


class FakeEmbedder:
    """Hash-seeded vectors; counts the texts it is asked to compute."""

    def __init__(self):
        self.computed = 0

    def encode(self, texts):
        self.computed += len(texts)
        return np.stack([np.random.default_rng(abs(hash(t)) % 2**32).standard_normal(8) for t in texts]).astype(
            np.float32
        )

    def save(self):
        pass
