"""DATA_DIR across releases: a directory written in each format (tests/data/datadir-format1, datadir-format2,
datadir-format3, committed as their releases wrote them) is read by every later release; a file from a newer release is refused with
what to do, or, for a cache, recomputed rather than misread."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.labelstudio import schema as schemas
from backend.learning import classifier, vectors
from backend.learning.vectors import VectorCache
from backend.loop import model_store
from backend.loop.model_store import DataFormatError, ModelStore
from backend.loop.projects import ModelSet, TrainedModel

FACETS = schemas.parse_config((Path(__file__).parents[2] / "label_config" / "review_facets.xml").read_text())

HELD = Path(__file__).parents[1] / "data" / "datadir-format1"
HELD_2 = Path(__file__).parents[1] / "data" / "datadir-format2"
HELD_3 = Path(__file__).parents[1] / "data" / "datadir-format3"


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


def test_a_data_dir_written_in_format_3_is_read_without_unpickling(tmp_path, monkeypatch):
    data = shutil.copytree(HELD_3, tmp_path / "data")
    store = ModelStore(data, "7")
    assert store.artifact("llm-r2").suffix == ".npz"
    monkeypatch.setattr(model_store.joblib, "load", never)  # a format-3 artifact is no pickle
    version, saved = store.current()
    served = ModelSet.of(saved)
    assert version == "llm-r2" and served.version == "llm-r2"
    types = {name: type(m.model) for name, m in served.models.items()}
    assert types == {
        "sentiment": classifier.Mixed,
        "aspects": classifier.MultiLabelClassifier,
        "spoiler": classifier.Recalibrated,
    }
    for name, trained in served.models.items():
        x, llm = np.load(data / f"probe-x-{name}.npy"), np.load(data / f"probe-llm-{name}.npy")
        assert np.allclose(trained.model.predict_proba(x, llm), np.load(data / f"probe-p-{name}.npy"))
    sentiment = served.models["sentiment"]
    assert sentiment.labels == ("Positive", "Negative", "Neutral") and sentiment.heldout == {1: (0, 2), 4: (1, 1)}
    assert (sentiment.version, sentiment.features, sentiment.score) == ("llm-r1", "llm-layer-15+minilm", 0.71)
    assert served.models["spoiler"].score is None
    assert {k: v.tolist() for k, v in served.learned(FACETS, "llm").items()} == {
        "sentiment": [0, 1, 2],
        "aspects": [0, 1, 2],
        "spoiler": [0, 1],
    }
    # a new format needs a new held directory beside these
    assert model_store.FORMAT == 3 and vectors.FORMAT == 1


def test_a_saved_set_names_no_module_and_comes_back_equal(tmp_path):
    version, saved = ModelStore(shutil.copytree(HELD_3, tmp_path / "held"), "7").current()
    served = ModelSet.of(saved)
    store = ModelStore(tmp_path / "data", "8")
    store.add("llm-r3", served.as_data(), {}, promote=True)
    assert b"backend" not in store.artifact("llm-r3").read_bytes()
    again = ModelSet.of(store.current()[1])
    for name, trained in served.models.items():
        x = np.load(HELD_3 / f"probe-x-{name}.npy")
        llm = np.load(HELD_3 / f"probe-llm-{name}.npy")
        assert np.array_equal(again.models[name].model.predict_proba(x, llm), trained.model.predict_proba(x, llm))
        assert again.models[name].heldout == trained.heldout and again.models[name].labels == trained.labels


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
        match=r"format 4, written by a newer release; this one reads formats up to 3: "
        r"run the newer release, or restore DATA_DIR from a backup",
    ):
        store.current()
    assert json.loads(store.registry_path.read_text()) == newer  # refused, never rewritten

    path = tmp_path / "newer.npz"
    np.savez(path, keys=np.array(["k"], dtype="U64"), vectors=np.ones((1, 2)), format=np.array(vectors.FORMAT + 1))
    with caplog.at_level(logging.WARNING):
        cache = VectorCache(path)
    assert len(cache) == 0 and "format 2" in caplog.text  # a cache is computed again, not misread
