"""The unit tier's shared, session-long caches of expensive setups (tests/conftest.py has the tiers' fixtures)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import warm


@pytest.fixture(scope="session", autouse=True)
def minilm_once_per_session():
    """The packaged MiniLM loaded once, and each text embedded once, for the whole session.

    The loop's tests build a new Service (a new Embedder with an empty cache in its tmp_path) per test and embed the
    same corpus reviews again: most of their time. Every Embedder still runs its own VectorCache, disk cache and
    batching; only the model's answer for a text it has already embedded in this session is reused (MiniLM on the
    CPU is deterministic for a text)."""
    from backend.learning import embeddings

    compute, load = embeddings.Embedder._compute, embeddings.Embedder._load
    model: list = []
    seen: dict[str, np.ndarray] = {}
    lock = threading.Lock()

    def shared_load(self):
        with lock:
            if not model:
                model.append(load(self))
            self._model = model[0]
        return model[0]

    def remembered(self, texts: list[str]) -> np.ndarray:
        with lock:
            missing = list(dict.fromkeys(t for t in texts if t not in seen))
        if missing:
            fresh = compute(self, missing)
            with lock:
                seen.update(zip(missing, fresh))
        with lock:
            return np.stack([seen[t] for t in texts]).astype(np.float32)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings.Embedder, "_load", shared_load)
        patch.setattr(embeddings.Embedder, "_compute", remembered)
        yield


def pytest_collection_modifyitems(session, config, items):
    """The warm python (tests/warm.py) starts importing now, beside the first tests, when a collected test module
    runs commands through it."""
    if any(getattr(item.module, "warm", None) is warm for item in items if getattr(item, "module", None)):
        warm.start()
