"""Pre-annotation: tasks in, Label Studio predictions out, for whatever Choices-on-Text config a project has."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from backend.llm import calibration as cal
from backend.llm import prompt as prompts
from backend.llm.guidelines import Guidelines
from backend.llm.scorer import Scorer
from backend.llm.weights import ModelSource
from backend.labelstudio.schema import Schema

log = logging.getLogger(__name__)

# Bump when the scoring method changes in a way that changes predictions for the same model and prompt.
SCORER_VERSION = "1"


class TaskError(ValueError):
    """One task cannot be predicted; the answer explains it instead of failing the whole request."""


@dataclass(frozen=True)
class LabelSetup:
    prompt: prompts.Prompt
    calibration: cal.Calibration
    model_version: str


class Predictor:
    """The LLM scorer bound to the guidelines and calibration, for any schema a project brings."""

    def __init__(
        self,
        scorer: Scorer,
        source: ModelSource,
        guidelines: Guidelines | None,
        calibration: str = "auto",
        calibration_dir: Path | None = None,
        few_shot: bool = True,
    ) -> None:
        self.scorer = scorer
        self.source = source
        self.guidelines = guidelines
        self.calibration = calibration
        self.calibration_dir = calibration_dir
        self.few_shot = few_shot
        self._setups: dict[tuple[str, ...], LabelSetup] = {}
        self._lock = threading.Lock()

    def setup(self, schema: Schema) -> LabelSetup:
        """Prompt, calibration and model version for a label set; computed once, then cached."""
        with self._lock:
            if schema.names not in self._setups:
                self._setups[schema.names] = self._make_setup(schema.names)
            return self._setups[schema.names]

    def versions(self) -> list[str]:
        with self._lock:
            return sorted({s.model_version for s in self._setups.values()})

    def _make_setup(self, names: tuple[str, ...]) -> LabelSetup:
        prompt = prompts.build(self.scorer.tokenizer, names, self.guidelines, examples=self.few_shot)
        calibration = self._calibration(prompt)
        digest = hashlib.sha256(
            "\x1f".join((SCORER_VERSION, self.source.identity, prompt.sha256, calibration.sha256)).encode()
        ).hexdigest()
        guide = f"g{self.guidelines.version}" if self.guidelines else "g-none"
        version = f"{self.source.name}-{guide}-{calibration.method}-{digest[:10]}"
        log.info("model version %s for labels %s (calibration: %s)", version, list(names), calibration.method)
        return LabelSetup(prompt, calibration, version)

    def _calibration(self, prompt: prompts.Prompt) -> cal.Calibration:
        labels = prompt.labels
        method = self.calibration
        if method == "none":
            return cal.identity(labels)
        if method not in ("auto", "contextual", "fitted"):
            fitted = cal.Calibration.load(method)
            if fitted.labels != labels:  # names as the prompt shows them
                raise cal.CalibrationError(f"calibration {method} is for labels {list(fitted.labels)}, not {list(labels)}")
            return fitted
        if method in ("auto", "fitted"):
            fitted = self._find_fitted(prompt)
            if fitted:
                return fitted
            if method == "fitted":
                raise cal.CalibrationError(
                    f"no fitted calibration in {self.calibration_dir} for this model, prompt and labels "
                    "(run scripts/calibrate.py)"
                )
        return cal.contextual(labels, self.scorer.label_logprobs(prompt, list(cal.CONTENT_FREE)))

    def _find_fitted(self, prompt: prompts.Prompt) -> cal.Calibration | None:
        if not self.calibration_dir or not self.calibration_dir.is_dir():
            return None
        same_weights = None
        for path in sorted(self.calibration_dir.glob("*.json")):
            candidate = cal.Calibration.load(path)
            if candidate.labels != prompt.labels or candidate.prompt_sha256 != prompt.sha256:
                continue
            if candidate.model_identity == self.source.identity:
                return candidate
            if self.source.weights and candidate.model_identity == self.source.weights:
                same_weights = same_weights or (path, candidate)
        if same_weights:
            # Measured (README, Running at scale): the in-process engine's calibration serves llama.cpp's servers
            # within 0.015 of its macro-F1 (0.746-0.764 vs 0.760); contextual calibration scored 0.507 in process.
            log.info("no calibration fitted for this engine; using %s, fitted on the same weights", same_weights[0].name)
            return same_weights[1]
        return None

    def probabilities(self, schema: Schema, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_labels) calibrated label probabilities, columns in the config's label order."""
        setup = self.setup(schema)
        return setup.calibration.apply(self.feature_logprobs(setup, texts))

    @property
    def depth(self) -> int:
        """Decoder layers whose hidden states the engine can hand out; 0 for an engine behind an API."""
        return self.scorer.model.config.num_hidden_layers if hasattr(self.scorer, "logprobs_and_states") else 0

    def probabilities_and_states(self, schema: Schema, texts: Sequence[str], layer: int) -> tuple[np.ndarray, np.ndarray]:
        """probabilities(), and (n_texts, hidden) float32: `layer`'s output where the answer begins, same pass."""
        setup = self.setup(schema)
        logprobs, states = self.scorer.logprobs_and_states(
            setup.prompt, list(texts), setup.calibration.features, layers=[layer]
        )
        return setup.calibration.apply(logprobs), states[:, 0]

    def feature_logprobs(self, setup: LabelSetup, texts: Sequence[str], features: Sequence[str] | None = None) -> np.ndarray:
        """Log-probabilities of the calibration's feature strings (or of `features`) for each text."""
        return self.scorer.label_logprobs(setup.prompt, list(texts), features or setup.calibration.features)

    def task_texts(self, schema: Schema, tasks: Sequence[Any]) -> tuple[list[str], list[int], list[dict]]:
        """The texts of the tasks that can be predicted, their positions, and the others with the reason."""
        texts, slots, skipped = [], [], []
        for i, task in enumerate(tasks):
            try:
                texts.append(self._text(schema, task))
                slots.append(i)
            except TaskError as e:
                skipped.append({"index": i, "task": task.get("id") if isinstance(task, dict) else None, "reason": str(e)})
        return texts, slots, skipped

    @staticmethod
    def _text(schema: Schema, task: Any) -> str:
        if not isinstance(task, dict):
            raise TaskError("a task must be a JSON object")
        data = task.get("data")
        if not isinstance(data, dict):
            raise TaskError("the task has no 'data' object")
        if schema.data_key not in data:
            reads = f"the <{schema.object_tag}> tag reads ${schema.data_key}"
            raise TaskError(f"the task's data has no '{schema.data_key}' field ({reads})")
        text = schema.text_of(data)
        if text is None:
            raise TaskError(f"data.{schema.data_key} must be {schema.shape}")
        if not text.strip():
            raise TaskError(f"data.{schema.data_key} is empty")
        return text
