"""A cache of one vector per text (embeddings, LLM log-probabilities), keyed by the text's SHA-256, saved as .npz.

Retraining and re-ranking see the same texts again and again; computing a text's vector once is what makes a
retrain take a second rather than minutes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from backend.files import write_atomically

log = logging.getLogger(__name__)
FORMAT = 1  # the .npz layout (keys, vectors); files without the key are this layout too


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorCache:
    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else None
        self._rows: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._dirty = False
        if self.path and self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as saved:
                    found = int(saved["format"]) if "format" in saved.files else FORMAT
                    if found > FORMAT:  # a newer release's cache: recomputed here, never misread
                        raise ValueError(f"format {found}")
                    self._rows = dict(zip(saved["keys"].tolist(), saved["vectors"]))
            except (OSError, ValueError, KeyError) as e:  # a damaged cache is rebuilt, never trusted
                log.warning("%s is not readable here (%s): its vectors are computed again", self.path, e)
                self._rows = {}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """One row per text, in order; `compute` is called once, on the texts not cached yet."""
        keys = [text_key(t) for t in texts]
        with self._lock:
            missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            first = {k: t for t, k in zip(texts, keys)}
            fresh = np.asarray(compute([first[k] for k in missing]))
            with self._lock:
                self._rows.update(zip(missing, fresh))
                self._dirty = True
        with self._lock:
            rows = [self._rows[k] for k in keys]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(rows)

    def put(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store rows computed elsewhere (the same forward pass that filled another cache)."""
        with self._lock:
            self._rows.update(zip((text_key(t) for t in texts), np.asarray(vectors)))
            self._dirty = True

    def save(self) -> None:
        """Write atomically (temporary file, then rename), so a crash never leaves half a cache."""
        if not self.path or not self._dirty:
            return
        with self._lock:
            keys = np.array(list(self._rows), dtype="U64")
            vectors = np.stack(list(self._rows.values())) if self._rows else np.zeros((0, 0), np.float32)
            self._dirty = False
        write_atomically(
            self.path, lambda f: np.savez(f, keys=keys, vectors=vectors, format=np.array(FORMAT)), binary=True
        )
