"""DATA_DIR across releases: a directory written in today's format (tests/data/datadir-format1, committed as this
release wrote it) is read by every later release; a file from a newer release is refused with what to do, or, for
a cache, recomputed rather than misread."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.learning import vectors
from backend.learning.vectors import VectorCache
from backend.loop import model_store
from backend.loop.model_store import DataFormatError, ModelStore
from backend.loop.projects import TrainedModel

HELD = Path(__file__).parents[1] / "data" / "datadir-format1"


def never(texts):
    raise AssertionError(f"recomputed {texts}: the cache was not read")


def test_a_data_dir_written_in_format_1_is_read(tmp_path):
    data = shutil.copytree(HELD, tmp_path / "data")
    store = ModelStore(data, "7")
    version, model = store.current()
    assert version == "v1" and isinstance(model, TrainedModel) and model.labels == ("Positive", "Negative", "Neutral")
    assert np.allclose(model.model.predict_proba(np.load(data / "probe-x.npy")), np.load(data / "probe-p.npy"))
    assert [(v["version"], v["promoted"]) for v in store.versions()] == [("v1", True), ("v2", False)]
    cache = VectorCache(data / "cache" / "embeddings.npz")
    assert np.array_equal(cache.get(["another review", "a review"], never), [[3.0, 4.0], [1.0, 2.0]])
    assert model_store.FORMAT == vectors.FORMAT == 1  # a new format needs a new held directory beside this one


def test_a_registry_from_before_formats_is_read_and_stamped_on_the_next_write(tmp_path):
    store = ModelStore(tmp_path, "3")
    store.registry_path.parent.mkdir(parents=True)
    store.registry_path.write_text(json.dumps({"current": None, "versions": [{"version": "v0", "promoted": False}]}))
    assert store.versions() == [{"version": "v0", "promoted": False}]
    store.add_published("v0")
    assert json.loads(store.registry_path.read_text())["format"] == model_store.FORMAT


def test_a_newer_format_is_refused_with_what_to_do(tmp_path, caplog):
    store = ModelStore(shutil.copytree(HELD, tmp_path / "data"), "7")
    newer = {**json.loads(store.registry_path.read_text()), "format": model_store.FORMAT + 1}
    store.registry_path.write_text(json.dumps(newer))
    with pytest.raises(
        DataFormatError,
        match=r"format 2, written by a newer release; this one reads formats up to 1: "
        r"run the newer release, or restore DATA_DIR from a backup",
    ):
        store.current()
    assert json.loads(store.registry_path.read_text()) == newer  # refused, never rewritten

    path = tmp_path / "newer.npz"
    np.savez(path, keys=np.array(["k"], dtype="U64"), vectors=np.ones((1, 2)), format=np.array(vectors.FORMAT + 1))
    with caplog.at_level(logging.WARNING):
        cache = VectorCache(path)
    assert len(cache) == 0 and "format 2" in caplog.text  # a cache is computed again, not misread
