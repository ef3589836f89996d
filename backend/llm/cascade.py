"""Two models as one (LLM_MODEL=cascade): the first answers every text, the second answers again the texts those
answers doubt, and its calibrated answers serve for them.

The answers that decide are a student's (backend/llm/student.py): a readout of the first model's hidden state fitted,
at the pool's measure, to the second model's answers on the pool's calibration sample, no label read. A single-choice
config gets one; a config with several questions is decided by the first model's answers. The second model answers the
texts whose margin (Schema.margin; the smallest over a config's questions) lies below a threshold: the `share`
quantile of those margins on the sample (the student's out of fold). Student, threshold and both calibrations are
kept in the project's PoolCalibration, so a text's answer depends on the text alone, not on the request or chunk it
comes in.

What a trained model reads stays the first model's on every task, at training and at serving: its hidden state and
its own calibrated answers (first_answers, first_version), never the cascade's mix of two models: stacked on the
mix, the loop after 100 labels fell 0.09 macro-F1 below the first model's on R8 (docs/benchmark.md). The first
model's answers keep their own version, so a re-score publishes them before the second model's are ready
(loop/rescoring.py). Before a pool is measured (a request without a project) the first model decides and
UNSURE_BELOW serves.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from backend.labelstudio.schema import Config, Schema, as_config
from backend.llm import student
from backend.llm.predictor import PoolCalibration, Predictor
from backend.llm.student import Student
from backend.llm.weights import CASCADE

# The share of a pool the second model answers by default: the rule fixed on the pool splits (docs/benchmark.md).
SHARE = 0.05
STUDENT_DEPTH = 0.625  # the student reads the first model's state where the loop's models do (LLM_FEATURE_DEPTH)
# Where no project's pool was measured (no student): the packaged 0.5B's margin at the 5th percentile of its served
# answers (the fitted file) on 256 reviews of the demo's corpus (0.207 at the 10th, 0.431 at the 20th), so on such
# texts about the default share goes to the second model.
UNSURE_BELOW = 0.074


def margins(config: Config, answers: dict[str, np.ndarray]) -> np.ndarray:
    """Per text, the smallest margin over the config's questions: a text is as unsure as its least sure answer."""
    return np.min([q.margin(answers[q.from_name]) for q in config.questions], axis=0)


class Cascade(Predictor):
    """The first model's Predictor, whose served answers take the second model's where the first is unsure."""

    def __init__(self, first: Predictor, second: Predictor, share: float, layer: int | None = None) -> None:
        """`layer`: the first model's layer the student reads (the one the loop's trained models read); by default
        at LLM_FEATURE_DEPTH's default depth."""
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
        self.layer = layer or max(1, round(STUDENT_DEPTH * first.depth)) if first.depth else 0
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
        """The first model's pool calibration, the second's, the student (a single-choice config's: the second
        model's answers on the sample read from the first model's states there) and the threshold, the `share`
        quantile of the first answers' margins on the sample (the student's out of fold): each model's measuring pass
        over the sample gives what the student and the threshold read."""
        first = self.read_pool(config, texts, embed, layer=self.layer if config.single else 0)
        second = self.second.read_pool(config, texts, embed)
        if first.states is None:
            below = self._quantile(config, first.answers)
            return replace(first.calibration, second=second.calibration, unsure_below=below)
        name = config.primary.from_name
        taught = second.answers[name]
        held_out = {name: student.out_of_fold(first.states, taught, self.layer)}
        return replace(
            first.calibration,
            second=second.calibration,
            unsure_below=self._quantile(config, held_out),
            student=Student.fit(first.states, taught, self.layer),
        )

    def _quantile(self, config: Config, answers: dict[str, np.ndarray]) -> float:
        return round(float(np.quantile(margins(config, answers), self.share)), 6)

    def _student(self, config: Config, pool: PoolCalibration | None) -> Student | None:
        return pool.student if pool is not None and config.single else None

    def refine_layer(self, config: Config, pool: PoolCalibration | None = None) -> int:
        taught = self._student(config, pool)
        return taught.layer if taught is not None else 0

    def answers(
        self, config: Config, texts: Sequence[str], pool: PoolCalibration | None = None
    ) -> dict[str, np.ndarray]:
        """One pass of the first model gives its answers and the state its student reads."""
        layer = self.refine_layer(config, pool)
        if not layer:
            return super().answers(config, texts, pool)
        first, states = self.answers_and_states(config, texts, layer, pool)
        return self.refine(config, texts, first, pool, states)

    def unsure_below(self, pool: PoolCalibration | None) -> float:
        return pool.unsure_below if pool is not None and pool.unsure_below is not None else UNSURE_BELOW

    def first_version(self, config: Config, pool: PoolCalibration | None = None) -> str:
        """The first model's own answers, as it serves them alone under the pool's calibration."""
        return super().version(config, pool)

    def version(self, config: Config, pool: PoolCalibration | None = None) -> str:
        taught = self._student(config, pool)
        return self._named(
            f"{CASCADE}{round(self.share * 100)}",
            self.first_version(config, pool),
            self._second_version(config, pool),
            taught.sha256 if taught is not None else "",
            f"{self.share:.4f}",
            f"{self.unsure_below(pool):.6f}",
        )

    def _second_version(self, config: Config, pool: PoolCalibration | None) -> str:
        return self.second.version(config, pool.second if pool else None)

    def _named(self, kind: str, *parts: str) -> str:
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]
        name = f"{self.source.name}+{self.second.source.name}-{kind}-{digest}"
        with self._lock:
            self._names.add(name)
        return name

    def versions(self) -> list[str]:
        """The cascade's, and the first model's own (published first at a re-score)."""
        with self._lock:
            names = set(self._names)
        return sorted(names | set(super().versions()))

    def deciding(
        self,
        config: Config,
        texts: Sequence[str],
        first: dict[str, np.ndarray],
        pool: PoolCalibration | None = None,
        states: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The answers whose margins decide which texts the second model answers, served for the others: the
        student's where the pool has one (read from `states`, else computed), else the first model's (`first`)."""
        taught = self._student(config, pool)
        if taught is None:
            return first
        if states is None:
            states = self.answers_and_states(config, texts, taught.layer, pool)[1]
        return {config.primary.from_name: taught.apply(states)}

    def refine(
        self,
        config: Config,
        texts: Sequence[str],
        first: dict[str, np.ndarray],
        pool: PoolCalibration | None = None,
        states: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The student's answers where the pool has one (else the first model's), the second model's below the
        threshold."""
        first = self.deciding(config, texts, first, pool, states)
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
