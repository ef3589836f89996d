"""What the loop learns from and predicts with: each text's vector and the LLM's calibrated probabilities, cached per
text on disk.

The vectors are the LLM's own hidden state where the answer begins, at LLM_FEATURE_DEPTH of its layers, from the pass
that scores the text; MiniLM sentence embeddings where the engine exposes none (LLM_ENGINE=openai) or
LLM_FEATURE_DEPTH=0. Retraining and re-ranking see the same texts again and again, so nothing is computed twice.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import numpy as np

from backend.labelstudio.schema import Config, Schema, as_config
from backend.learning import recipes
from backend.learning.embeddings import Embedder
from backend.learning.vectors import VectorCache
from backend.llm.predictor import PoolCalibration, Predictor
from backend.ranking import judge
from backend.settings import Settings

MINILM = "minilm"


class TextFeatures:
    def __init__(self, settings: Settings, predictor: Callable[[], Predictor]) -> None:
        self.settings = settings
        self._predictor = predictor
        self.embedder = Embedder(settings.data_dir / "cache" / "embeddings.npz")
        self._caches: dict[str, VectorCache] = {}

    def _cache(self, name: str) -> VectorCache:
        if name not in self._caches:
            self._caches[name] = VectorCache(self.settings.data_dir / "cache" / f"{name}.npz")
        return self._caches[name]

    def features(self) -> str:
        """The text vectors a new model is trained on: "llm-layer-<n>", or MINILM."""
        depth = self._predictor().depth
        layer = round(self.settings.llm_feature_depth * depth)
        return f"llm-layer-{layer}" if layer >= 1 else MINILM

    @staticmethod
    def learner(features: str) -> str:
        """The fixed learner (classifier.LEARNERS) for these text vectors, for the tools that do not choose a recipe
        per project (finishing, label issues)."""
        return "blend" if features == MINILM else "state_blend"

    @staticmethod
    def candidates(features: str) -> tuple[recipes.Recipe, ...]:
        """The trained recipes a project's labels choose among for these text vectors (recipes.choose)."""
        return recipes.candidates(recipes.MINILM if features == MINILM else recipes.STATES)

    def shifts(self, config: Config | Schema, pool: PoolCalibration | None) -> dict[str, tuple[float, ...]]:
        """The LLM under each label-free calibration measured on the pool, as shifts of the served answers, the served
        one first (predictor.shifts); {} for a config with several questions."""
        return self._predictor().shifts(as_config(config), pool)

    def vector_sets(
        self, config: Config | Schema, texts: Sequence[str], features: str, pool: PoolCalibration | None = None
    ) -> dict[str, np.ndarray]:
        """{recipes.STATES: the hidden states, recipes.MINILM: the embeddings}, as the candidates read them."""
        out = {recipes.MINILM: self.vectors(config, texts, MINILM)}
        if features != MINILM:
            out[recipes.STATES] = self.vectors(config, texts, features, pool)
        return out

    @staticmethod
    def features_of(recipe: recipes.Recipe, features: str) -> str:
        """The vectors name a model of `recipe` is served with (TrainedModel.features): `features` for the hidden state,
        MINILM, or both joined by "+" for a mixed model."""
        names = {recipes.STATES: features, recipes.MINILM: MINILM}
        return "+".join(names[r] for r in recipe.reads)  # "" for a recipe that reads no vectors

    def llm_version(self, config: Config | Schema, pool: PoolCalibration | None = None) -> str:
        """The version of the LLM's answers to `config` (the model, the prompt, the calibration)."""
        return self._predictor().version(as_config(config), pool)

    def first_version(self, config: Config | Schema, pool: PoolCalibration | None = None) -> str:
        """The version of first_answers(): llm_version() but for a cascade (backend/llm/cascade.py)."""
        return self._predictor().first_version(as_config(config), pool)

    def llm_answers(
        self, config: Config | Schema, texts: Sequence[str], pool: PoolCalibration | None = None
    ) -> tuple[dict[str, np.ndarray], str]:
        """Every question's calibrated LLM probabilities (cached per text and LLM version) and that version; `pool`:
        the project's own calibration, where one serves (predictor.py)."""
        config = as_config(config)
        predictor = self._predictor()
        version = self.llm_version(config, pool)
        if version == predictor.first_version(config, pool):
            return self.first_answers(config, texts, pool)

        def refined(
            missing: list[str],
        ) -> np.ndarray:  # a cascade: its first model's answers and states are cached apart
            layer = predictor.refine_layer(config, pool)
            states = self.vectors(config, missing, f"llm-layer-{layer}", pool) if layer else None
            first = self.first_answers(config, missing, pool)[0]  # the states' pass gave them: a lookup
            return join(config, predictor.refine(config, missing, first, pool, states))

        probs = self._cache(f"llm-{version}").get(list(texts), refined)
        return split(config, probs.reshape(len(texts), -1)), version

    def first_answers(
        self, config: Config | Schema, texts: Sequence[str], pool: PoolCalibration | None = None
    ) -> tuple[dict[str, np.ndarray], str]:
        """The answers of the pass every text gets (a cascade's first model's own; the LLM's otherwise), cached per
        text, and their version: what trained models read beside the hidden state, and what a re-score can publish
        before a cascade's second model has answered."""
        config = as_config(config)
        predictor = self._predictor()
        version = predictor.first_version(config, pool)
        probs = self._cache(f"llm-{version}").get(
            list(texts), lambda missing: join(config, predictor.first_answers(config, missing, pool))
        )
        return split(config, probs.reshape(len(texts), -1)), version

    def llm_probs(
        self, config: Config | Schema, texts: Sequence[str], pool: PoolCalibration | None = None
    ) -> tuple[np.ndarray, str]:
        """The first question's calibrated LLM probabilities (what a trained model learns from) and the version."""
        config = as_config(config)
        answers, version = self.llm_answers(config, texts, pool)
        return answers[config.primary.from_name], version

    def vectors(
        self, config: Config | Schema, texts: Sequence[str], features: str, pool: PoolCalibration | None = None
    ) -> np.ndarray:
        """The texts' vectors of `features`, cached per text. A hidden state comes from the pass that scores the text, so
        the LLM's probabilities are cached with it and a following llm_probs() costs a lookup. Features "": no vectors
        (a recalibrated LLM reads none)."""
        if not features:
            return np.zeros((len(texts), 0), dtype=np.float32)
        if features == MINILM:
            return self.embedder.encode(texts)
        if "+" in features:  # a mixed model's vectors, side by side (classifier.Mixed)
            return np.hstack([self.vectors(config, texts, part, pool) for part in features.split("+")])
        config = as_config(config)
        layer = int(features.rsplit("-", 1)[1])
        predictor = self._predictor()
        version = predictor.first_version(config, pool)  # the states' pass

        def compute(missing: list[str]) -> np.ndarray:
            answers, states = predictor.answers_and_states(config, missing, layer, pool)
            self._cache(f"llm-{version}").put(missing, join(config, answers))
            return states

        return self._cache(f"states-{version}-L{layer}").get(list(texts), compute)

    def judged(self, strategy: str, texts: list[str]) -> np.ndarray:
        """The LLM's judgement of every text (backend/ranking/judge.py), cached per text like the probabilities."""
        variant = strategy.removeprefix("llm_")
        predictor = self._predictor()
        scorer = predictor.scorer
        prompt = judge.judge_prompt(scorer.tokenizer, variant)
        digest = hashlib.sha256(f"{predictor.source.identity}\x1f{prompt.sha256}".encode()).hexdigest()
        return judge.utilities(scorer, texts, variant, self._cache(f"judge-{variant}-{digest[:12]}"))

    def save(self) -> None:
        """Kept on disk so a restarted backend does not score every labeled text again before its first retrain."""
        self.embedder.save()
        for cache in list(self._caches.values()):
            cache.save()


def join(config: Config, answers: dict[str, np.ndarray]) -> np.ndarray:
    """Every question's probabilities side by side, in the config's order: one cached row per text."""
    return np.hstack([answers[q.from_name] for q in config.questions])


def split(config: Config, joined: np.ndarray) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for q in config.questions:
        out[q.from_name] = joined[:, start : start + len(q.labels)]
        start += len(q.labels)
    return out
