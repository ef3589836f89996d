"""Every trained model type is registered once (classifier.MODEL_TYPES) and saved as what it is made of: each one
comes back from its parts answering exactly as it did, through the model store's document too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from backend.learning import classifier, recipes
from backend.loop.model_store import ModelStore

RNG = np.random.default_rng(5)
STATES, MINILM = RNG.normal(size=(36, 6)), RNG.normal(size=(36, 4))
LLM = RNG.dirichlet([1, 1, 1], 36)
Y = np.arange(36) % 3
YES = (RNG.uniform(size=(36, 3)) > 0.5).astype(int)


def _built(name: str) -> tuple[classifier.Model, np.ndarray, np.ndarray]:
    """A fitted model of the registered type `name`, with the vectors and LLM probabilities it reads."""
    if name == "classifier":
        return classifier.fit("blend", MINILM, LLM, Y, 3), MINILM, LLM
    if name == "multilabel":
        return classifier.fit("state_blend", STATES, LLM, YES, 3), STATES, LLM
    if name == "mixed":
        vectors = {recipes.STATES: STATES, recipes.MINILM: MINILM}
        model = recipes.RECIPES["mixed"].fit(recipes.Labeled(vectors, LLM, Y, 3))
        return model, np.hstack([STATES, MINILM]), LLM
    if name == "recalibrated":
        return classifier.Recalibrated((0.3, -0.1, 0.0), 3), np.zeros((36, 0)), LLM
    raise AssertionError(f"no builder for the registered model type {name!r}: add one here")


@pytest.mark.parametrize("name", list(classifier.MODEL_TYPES))
def test_every_registered_type_comes_back_from_its_parts_answering_the_same(name, tmp_path):
    model, x, llm = _built(name)
    parts = classifier.to_parts(model)
    assert parts["type"] == name
    again = classifier.from_parts(parts)
    assert type(again) is type(model)
    assert np.array_equal(again.predict_proba(x, llm), model.predict_proba(x, llm))
    assert np.array_equal(again.learned, model.learned)
    store = ModelStore(tmp_path, "1")
    store.add("v-r1", {"model": parts}, {}, promote=True)
    stored = classifier.from_parts(store.current()[1]["model"])
    assert np.array_equal(stored.predict_proba(x, llm), model.predict_proba(x, llm))


def test_a_new_type_is_one_registration(monkeypatch, tmp_path):
    @dataclass
    class Constant:
        p: np.ndarray

        @property
        def learned(self) -> np.ndarray:
            return np.arange(len(self.p))

        def predict_proba(self, vectors: np.ndarray, llm_probs: np.ndarray | None = None) -> np.ndarray:
            return np.tile(self.p, (len(vectors), 1))

        def as_parts(self) -> dict[str, Any]:
            return {"p": self.p}

        @classmethod
        def from_parts(cls, parts: dict[str, Any]) -> "Constant":
            return cls(np.asarray(parts["p"]))

    monkeypatch.setitem(classifier.MODEL_TYPES, "constant", Constant)
    store = ModelStore(tmp_path, "1")
    store.add("v-r1", classifier.to_parts(Constant(np.array([0.2, 0.8]))), {}, promote=True)
    again = classifier.from_parts(store.current()[1])
    assert isinstance(again, Constant) and np.array_equal(again.predict_proba(np.zeros((2, 1))), [[0.2, 0.8]] * 2)


def test_an_unknown_type_is_refused_both_ways():
    with pytest.raises(ValueError, match="unknown model type 'forest'; this release knows classifier"):
        classifier.from_parts({"type": "forest"})
    with pytest.raises(TypeError, match="dict is not a registered model type"):
        classifier.to_parts({"w": 1})  # type: ignore[arg-type]
