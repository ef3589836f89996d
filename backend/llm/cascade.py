"""Two models as one (LLM_MODEL=cascade): the first answers every text, the second answers again the texts the first
is least sure of, and its calibrated answers serve for those.

Which texts: those whose first-model margin (Schema.margin; the smallest over a config's questions) lies below a
threshold measured once per project, the `share` quantile of the margins over the pool's calibration sample
(predictor.pool_sample), kept in the project's PoolCalibration. A text's answer therefore depends on the text
alone, not on the request or chunk it comes in, and what a trained model reads is the same at training and at
serving: the first model's hidden state, and the served probabilities (the second model's where it answered).
Before a pool is measured (a request without a project) UNSURE_BELOW serves.

The model version names both models, the share and the threshold; the first model's answers keep their own version
(first_version), so a re-score can publish them before the second model's are ready (loop/rescoring.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from backend.labelstudio.schema import Config, Schema, as_config
from backend.llm.predictor import PoolCalibration, Predictor, pool_sample

CASCADE = "cascade"  # the LLM_MODEL value; the models and share: LLM_CASCADE_MODELS, LLM_CASCADE_SHARE
MODELS = ("embedded-0.5b", "embedded-1.5b")
# The share of a pool the second model answers by default: the rule fixed on the pool splits (docs/benchmark.md).
SHARE = 0.2
# Where no project's pool was measured: the packaged 0.5B's margin at the 20th percentile of its served answers (the
# fitted file) on 256 reviews of the demo's corpus (0.207 at the 10th, 0.593 at the 30th), so on such texts about the
# default share goes to the second model.
UNSURE_BELOW = 0.43


def parse_models(value: str) -> tuple[str, str]:
    """LLM_CASCADE_MODELS: two LLM_MODEL values, comma-separated, the first answering every text; MODELS when empty."""
    models = tuple(m.strip() for m in value.split(",") if m.strip()) or MODELS
    if len(models) != 2:
        raise ValueError(
            f"LLM_CASCADE_MODELS={value!r}: give two LLM_MODEL values, the first answers every text, e.g. "
            f"{','.join(MODELS)}"
        )
    if CASCADE in models:
        raise ValueError("LLM_CASCADE_MODELS: a cascade's models cannot be cascades")
    return models[0], models[1]


def margins(config: Config, answers: dict[str, np.ndarray]) -> np.ndarray:
    """Per text, the smallest margin over the config's questions: a text is as unsure as its least sure answer."""
    return np.min([q.margin(answers[q.from_name]) for q in config.questions], axis=0)


class Cascade(Predictor):
    """The first model's Predictor, whose served answers take the second model's where the first is unsure."""

    def __init__(self, first: Predictor, second: Predictor, share: float) -> None:
        super().__init__(
            first.scorer,
            first.source,
            first.guidelines,
            calibration=first.calibration,
            calibration_dir=first.calibration_dir,
            few_shot=first.few_shot,
        )
        self.second = second
        self.share = share
        self._names: set[str] = set()

    def wants_pool(self, config: Config, pool: PoolCalibration | None) -> bool:
        """Whatever CALIBRATION says: the threshold is measured on the pool."""
        return (
            pool is None
            or pool.second is None
            or pool.prompt_sha256 != self._any_setup(config, None).prompt.sha256
            or super().wants_pool(config, pool)
        )

    def measure_pool(
        self,
        config: Config,
        texts: Sequence[str],
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> PoolCalibration:
        """The first model's pool calibration, the second's, and the `share` quantile of the first's margins on the
        same sample: one more pass of the first model and the second model's measure over the sample."""
        first = super().measure_pool(config, texts, embed)
        sample = pool_sample(texts)
        below = float(np.quantile(margins(config, self.first_answers(config, sample, first)), self.share))
        return replace(first, second=self.second.measure_pool(config, texts, embed), unsure_below=round(below, 6))

    def unsure_below(self, pool: PoolCalibration | None) -> float:
        return pool.unsure_below if pool is not None and pool.unsure_below is not None else UNSURE_BELOW

    def first_version(self, config: Config, pool: PoolCalibration | None = None) -> str:
        return super().version(config, pool)

    def version(self, config: Config, pool: PoolCalibration | None = None) -> str:
        parts = (
            self.first_version(config, pool),
            self.second.version(config, pool.second if pool else None),
            f"{self.share:.4f}",
            f"{self.unsure_below(pool):.6f}",
        )
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]
        name = f"{self.source.name}+{self.second.source.name}-{CASCADE}{round(self.share * 100)}-{digest}"
        with self._lock:
            self._names.add(name)
        return name

    def versions(self) -> list[str]:
        with self._lock:
            return sorted(self._names)

    def refine(
        self, config: Config, texts: Sequence[str], first: dict[str, np.ndarray], pool: PoolCalibration | None = None
    ) -> dict[str, np.ndarray]:
        unsure = np.flatnonzero(margins(config, first) < self.unsure_below(pool))
        if not len(unsure):
            return first
        second = self.second.answers(config, [texts[i] for i in unsure], pool.second if pool else None)
        out = {q: p.copy() for q, p in first.items()}
        for q in out:
            out[q][unsure] = second[q]
        return out

    def probabilities(self, schema: Schema, texts: Sequence[str], pool: PoolCalibration | None = None) -> np.ndarray:
        return self.answers(as_config(schema), texts, pool)[schema.from_name]

    def shifts(self, config: Config, pool: PoolCalibration | None) -> dict[str, tuple[float, ...]]:
        """None: the other calibrations measured on the pool are the first model's, and shifting the served answers
        by them would move the second model's too."""
        return {}
