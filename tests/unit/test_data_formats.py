"""DATA_DIR across releases: a directory written in each format (tests/data/datadir-format1, datadir-format2,
committed as their releases wrote them) is read by every later release; a file from a newer release is refused with
what to do, or, for a cache, recomputed rather than misread."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.labelstudio import schema as schemas
from backend.learning import vectors
from backend.learning.vectors import VectorCache
from backend.loop import model_store
from backend.loop.model_store import DataFormatError, ModelStore
from backend.loop.projects import ModelSet, TrainedModel

FACETS = schemas.parse_config((Path(__file__).parents[2] / "label_config" / "review_facets.xml").read_text())

HELD = Path(__file__).parents[1] / "data" / "datadir-format1"
HELD_2 = Path(__file__).parents[1] / "data" / "datadir-format2"


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
    # A format-1 model is the first question's, and serves it as a set of one.
    served = ModelSet.of(model)
    assert served.version == "v1" and served.saved_for(FACETS, FACETS.primary) is model
    assert served.saved_for(FACETS, FACETS.question("spoiler")) is None
    # what the ranking reads of it, from a model pickled before the property existed
    assert {k: v.tolist() for k, v in served.learned(FACETS, "llm-1").items()} == {"sentiment": [0, 1, 2]}
    assert served.learned(FACETS, "another-llm") == {}  # a model for another LLM version serves nothing


def test_a_data_dir_written_in_format_2_is_read(tmp_path):
    data = shutil.copytree(HELD_2, tmp_path / "data")
    store = ModelStore(data, "7")
    version, saved = store.current()
    assert version == "llm-r2" and isinstance(saved, ModelSet)
    assert {name: m.version for name, m in saved.models.items()} == {"sentiment": "llm-r1", "spoiler": "llm-r2"}
    probe = np.load(data / "probe-x.npy")
    for name in ("sentiment", "spoiler"):
        assert np.allclose(saved.models[name].model.predict_proba(probe), np.load(data / f"probe-p-{name}.npy"))
    assert saved.fitting(FACETS, "llm").keys() == {"sentiment", "spoiler"}
    assert {k: v.tolist() for k, v in saved.learned(FACETS, "llm").items()} == {
        "sentiment": [0, 1, 2],
        "spoiler": [0, 1],
    }
    assert json.loads(store.registry_path.read_text())["format"] == 2
    # a new format needs a new held directory beside these
    assert model_store.FORMAT == 2 and vectors.FORMAT == 1


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
        match=r"format 3, written by a newer release; this one reads formats up to 2: "
        r"run the newer release, or restore DATA_DIR from a backup",
    ):
        store.current()
    assert json.loads(store.registry_path.read_text()) == newer  # refused, never rewritten

    path = tmp_path / "newer.npz"
    np.savez(path, keys=np.array(["k"], dtype="U64"), vectors=np.ones((1, 2)), format=np.array(vectors.FORMAT + 1))
    with caplog.at_level(logging.WARNING):
        cache = VectorCache(path)
    assert len(cache) == 0 and "format 2" in caplog.text  # a cache is computed again, not misread
