"""Pre-annotation: tasks in, Label Studio predictions out, for whatever Choices-on-Text config a project has."""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, cast

import numpy as np

from backend.errors import LabelloopError
from backend.guidelines import Guidelines
from backend.labelstudio.schema import Config, Schema
from backend.llm import calibration as cal
from backend.llm import prompt as prompts
from backend.llm.scorer import Scorer, StateScorer
from backend.llm.student import Student
from backend.llm.weights import ModelSource

log = logging.getLogger(__name__)

# Bump when the scoring method changes in a way that changes predictions for the same model and prompt.
SCORER_VERSION = "1"


class TaskError(LabelloopError, ValueError):
    """One task cannot be predicted; the answer explains it instead of failing the whole request."""

    http_status = 400


@dataclass(frozen=True)
class PoolCalibration:
    """A project's calibrations measured on its own texts without labels (calibration.pool), one per question, and
    the prompt they were measured under: a changed prompt makes them stale (the loop measures again). `resemblance`:
    how close the pool's texts lie to those a matching fitted file was fitted on (calibration.resemblance), None
    where no fitted file matches or it cannot tell; the fitted file serves only above calibration.RESEMBLANCE."""

    prompt_sha256: str
    questions: tuple[tuple[str, cal.Calibration], ...]  # (from_name, its calibration), config order
    size: int  # texts measured
    resemblance: float | None = None
    # A single-choice config's every label-free calibration measured on the pool, by method (none, domain, pool, and
    # fitted+pool where a fitted file matches): candidates its labels score (Predictor.shifts).
    alternatives: tuple[tuple[str, cal.Calibration], ...] = ()
    # Under a cascade (backend/llm/cascade.py): the second model's own calibration of the pool, and the first model's
    # margin below which the second answers again (measured on the same sample).
    second: "PoolCalibration | None" = None
    unsure_below: float | None = None
    student: Student | None = None  # the second model's answers read from the first's state (backend/llm/student.py)

    def get(self, from_name: str) -> cal.Calibration | None:
        return dict(self.questions).get(from_name)

    @property
    def fitted_applies(self) -> bool:
        """Whether a matching fitted file may serve this pool: it resembles the file's texts, or the file cannot
        tell (written before files kept their texts' centroid)."""
        return self.resemblance is None or self.resemblance >= cal.RESEMBLANCE

    def reason(self, fitted: bool) -> str:
        """Why the calibration that serves was chosen, in words for /versions and the log."""
        if self.resemblance is None:
            return (
                "a fitted file matches the model, prompt and labels, and keeps no centroid of its texts to compare"
                if fitted
                else f"no fitted file matches: the calibration measured on {self.size} of the pool's texts serves"
            )
        relation = ">=" if self.fitted_applies else "<"
        verdict = (
            "the fitted file serves"
            if self.fitted_applies
            else f"the calibration measured on {self.size} of the pool's texts serves instead of the fitted file"
        )
        return (
            f"the pool's texts lie at cosine {self.resemblance:.3f} {relation} {cal.RESEMBLANCE} from those the "
            f"fitted file was fitted on: {verdict}"
        )

    def as_dict(self) -> dict:
        return {
            "prompt_sha256": self.prompt_sha256,
            "size": self.size,
            "resemblance": self.resemblance,
            "questions": {q: c.as_dict() for q, c in self.questions},
            "alternatives": {m: c.as_dict() for m, c in self.alternatives},
            **({"second": self.second.as_dict(), "unsure_below": self.unsure_below} if self.second else {}),
            **({"student": self.student.as_dict()} if self.student else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "PoolCalibration":
        try:
            questions = tuple((str(q), cal.Calibration.from_dict(c)) for q, c in data["questions"].items())
            resemblance = data.get("resemblance")
            alternatives = tuple(
                (str(m), cal.Calibration.from_dict(c)) for m, c in data.get("alternatives", {}).items()
            )
            second = cls.from_dict(data["second"]) if data.get("second") else None
            return cls(
                str(data["prompt_sha256"]),
                questions,
                int(data["size"]),
                None if resemblance is None else float(resemblance),
                alternatives,
                second,
                float(data["unsure_below"]) if second else None,
                Student.from_dict(data["student"]) if data.get("student") else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise cal.CalibrationError(f"unreadable pool calibration: {e}") from None


# The texts a pool calibration reads: the first POOL_SAMPLE of the pool in the order of their SHA-256, so replicas and
# restarts measure the same texts whatever order Label Studio lists them in. 256 keeps the measuring pass under a
# minute on two cores; the mean of 256 probabilities varies by a few hundredths at most.
POOL_SAMPLE = 256


def pool_sample(texts: Sequence[str], size: int = POOL_SAMPLE) -> list[str]:
    unique = {hashlib.sha256(t.encode()).hexdigest(): t for t in texts if t and t.strip()}
    return [unique[h] for h in sorted(unique)[:size]]


@dataclass(frozen=True)
class PoolReading:
    """What measuring a pool read (Predictor.read_pool): the calibration, the sample, the first answers there under
    it, and (a single question's, when asked) the hidden states there."""

    calibration: PoolCalibration
    sample: list[str]
    answers: dict[str, np.ndarray]
    states: np.ndarray | None


@dataclass(frozen=True)
class LabelSetup:
    prompt: prompts.Prompt
    calibration: cal.Calibration
    model_version: str


@dataclass(frozen=True)
class FormSetup:
    """A several-question config: one prompt, and a calibration per question (with a threshold per label for a
    multi-label one)."""

    prompt: prompts.Prompt
    calibrations: dict[str, cal.Calibration]
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
        # What CALIBRATION asks for (calibration.SETTINGS); None for a calibration file's path.
        self.setting = cal.setting(calibration)
        self.calibration_dir = calibration_dir
        self.few_shot = few_shot
        self._setups: dict[tuple, LabelSetup] = {}
        self._forms: dict[tuple[Config, PoolCalibration | None], FormSetup] = {}
        self._lock = threading.Lock()

    def setup(self, schema: Schema, pool: PoolCalibration | None = None) -> LabelSetup:
        """Prompt, calibration and model version for one single-choice question; computed once, then cached. `pool`:
        the project's own calibration (PoolCalibration), used where the CALIBRATION setting and the files allow."""
        key = (schema.from_name, schema.names, pool)  # guidelines written per question give each its own prompt
        with self._lock:
            if key not in self._setups:
                self._setups[key] = self._make_setup(schema, pool)
            return self._setups[key]

    def form_setup(self, config: Config, pool: PoolCalibration | None = None) -> FormSetup:
        """The same for a config with several questions or a multi-label one."""
        with self._lock:
            if (config, pool) not in self._forms:
                self._forms[(config, pool)] = self._make_form(config, pool)
            return self._forms[(config, pool)]

    def version(self, config: Config, pool: PoolCalibration | None = None) -> str:
        """The model version of a config's predictions: one name for all its questions."""
        return self._any_setup(config, pool).model_version

    def _any_setup(self, config: Config, pool: PoolCalibration | None) -> LabelSetup | FormSetup:
        return self.setup(config.primary, pool) if config.single else self.form_setup(config, pool)

    def wants_pool(self, config: Config, pool: PoolCalibration | None) -> bool:
        """True when the pool decides the calibration (CALIBRATION auto, domain or pool) and `pool` is missing or was
        measured under another prompt. Under auto a matching fitted file does not spare the measure: the pool decides
        whether the file applies (PoolCalibration.resemblance)."""
        if not (self.setting and self.setting.pool):
            return False
        return pool is None or pool.prompt_sha256 != self._any_setup(config, None).prompt.sha256

    def methods(self, config: Config, pool: PoolCalibration | None = None) -> set[str]:
        """The calibration methods that serve the config's questions under `pool`."""
        setup = self._any_setup(config, pool)
        if isinstance(setup, LabelSetup):
            return {setup.calibration.method}
        return {c.method for c in setup.calibrations.values()}

    def fitted_centroid(self, config: Config) -> tuple[float, ...]:
        """The centroid of the texts a fitted file matching this config was fitted on; () when none matches or it
        keeps none. What measure_pool compares the pool with."""
        if not (self.setting and self.setting.fitted == "prefer"):
            return ()
        if config.single:
            fitted = self._find_fitted(self.setup(config.primary).prompt)
            return fitted.centroid if fitted else ()
        form = self._find_fitted_form(config, self.form_setup(config).prompt)
        return next(iter(form.values())).centroid if form else ()

    def measure_pool(
        self,
        config: Config,
        texts: Sequence[str],
        embed: Callable[[list[str]], np.ndarray] | None = None,
    ) -> PoolCalibration:
        """Each question's calibration measured on a sample of the project's texts (pool_sample), no labels read:
        domain-context (random words of the sample, calibration.domain_texts) or, with CALIBRATION=pool, batch
        calibration (calibration.pool) of the sample itself. `embed` (texts → MiniLM vectors) places the sample, to
        compare it with a matching fitted file's texts (PoolCalibration.resemblance); called only when one matches."""
        return self.read_pool(config, texts, embed).calibration

    def read_pool(
        self,
        config: Config,
        texts: Sequence[str],
        embed: Callable[[list[str]], np.ndarray] | None = None,
        layer: int = 0,
    ) -> PoolReading:
        """measure_pool(), with the first answers on the sample under the calibration measured and, for a single
        question, `layer`'s states there: from the measuring pass itself, where its strings cover the served
        calibration's (a cascade reads both, backend/llm/cascade.py)."""
        sample = pool_sample(texts)
        if not sample:
            raise cal.CalibrationError("the pool has no text to calibrate on")

        def resemblance(fitted_centroid: tuple[float, ...]) -> float | None:
            if not fitted_centroid or embed is None:
                return None
            return cal.resemblance(fitted_centroid, cal.centroid(embed(sample)))

        if not config.single:
            measured = self._measure_form(config, sample, resemblance)
            return PoolReading(measured, sample, self.first_answers(config, sample, measured), None)
        prompt = self.setup(config.primary).prompt
        fitted = self._find_fitted(prompt) if self.setting and self.setting.fitted == "prefer" else None
        features = fitted.features if fitted else prompt.labels
        if layer:
            logprobs, states = self._state_scorer().logprobs_and_states(prompt, sample, features, layers=[layer])
            states = states[:, 0]
        else:
            logprobs, states = self.scorer.label_logprobs(prompt, sample, features), None
        alternatives = self._alternatives(prompt, sample, fitted, logprobs)
        measured = PoolCalibration(
            prompt.sha256,
            ((config.primary.from_name, alternatives[self._pool_method]),),
            len(sample),
            resemblance(fitted.centroid if fitted else ()),
            tuple(alternatives.items()),
        )
        served = self.setup(config.primary, measured).calibration
        if set(served.features) <= set(features):
            answers = served.apply(logprobs[:, [features.index(f) for f in served.features]])
        else:  # a calibration file reading other strings: scored again
            answers = served.apply(self.feature_logprobs(self.setup(config.primary, measured), sample))
        return PoolReading(measured, sample, {config.primary.from_name: answers}, states)

    def _measure_form(
        self, config: Config, sample: list[str], resemblance: Callable[[tuple[float, ...]], float | None]
    ) -> PoolCalibration:
        batch = self._pool_method == "pool"
        prompt = self.form_setup(config).prompt
        logprobs = self.scorer.label_logprobs(prompt, sample if batch else cal.domain_texts(sample))
        questions = []
        for q, labels, cols in form_columns(config):
            features = [prompt.labels[c] for c in cols]
            measured = (
                cal.pool(cal.identity(labels, features), logprobs[:, cols])
                if batch
                else cal.domain(labels, logprobs[:, cols], features)
            )
            questions.append((q.from_name, _multi(q, measured)))
        return PoolCalibration(prompt.sha256, tuple(questions), len(sample), resemblance(self.fitted_centroid(config)))

    def _alternatives(
        self, prompt: prompts.Prompt, sample: list[str], fitted: cal.Calibration | None, sample_logprobs: np.ndarray
    ) -> dict[str, cal.Calibration]:
        """Every label-free calibration of a single question on the pool's sample: none, domain (random words of
        the sample), pool (batch calibration of the sample), and fitted+pool on top of `fitted`, the file matching the
        prompt. `sample_logprobs`: the sample's scores of every label string the fitted file reads (else the
        labels)."""
        labels = prompt.labels
        features = fitted.features if fitted else labels
        cols = [features.index(label) for label in labels]
        out = {
            "none": cal.identity(labels),
            "domain": cal.domain(labels, self.scorer.label_logprobs(prompt, cal.domain_texts(sample))),
            "pool": cal.pool(cal.identity(labels), sample_logprobs[:, cols]),
        }
        if fitted:
            out["fitted+pool"] = cal.pool(fitted, sample_logprobs)
        return out

    def shifts(self, config: Config, pool: PoolCalibration | None) -> dict[str, tuple[float, ...]]:
        """The LLM under each label-free calibration measured on the pool, as shifts of the served log-probabilities
        (calibration.shifts), the served one first; {} for a config with several questions or before the pool was
        measured under this prompt."""
        if not config.single or pool is None or not pool.alternatives:
            return {}
        setup = self.setup(config.primary, pool)
        if pool.prompt_sha256 != setup.prompt.sha256:
            return {}
        served = setup.calibration
        return cal.shifts(served, {served.method: served, **dict(pool.alternatives)})

    def versions(self) -> list[str]:
        with self._lock:
            names = {s.model_version for s in self._setups.values()} | {f.model_version for f in self._forms.values()}
            return sorted(names)

    def _name(self, method: str, *parts: str) -> str:
        digest = hashlib.sha256("\x1f".join((SCORER_VERSION, self.source.identity, *parts)).encode()).hexdigest()
        guide = f"g{self.guidelines.version}" if self.guidelines else "g-none"
        return f"{self.source.name}-{guide}-{method}-{digest[:10]}"

    def _make_setup(self, schema: Schema, pool: PoolCalibration | None) -> LabelSetup:
        guidelines = self.guidelines.for_question(schema.from_name) if self.guidelines else None
        prompt = prompts.build(self.scorer.tokenizer, schema.names, guidelines, examples=self.few_shot)
        calibration = self._calibration(prompt, _fresh(pool, prompt, schema.from_name), _fitted_applies(pool, prompt))
        version = self._name(calibration.method, prompt.sha256, calibration.sha256)
        log.info("model version %s for labels %s (calibration: %s)", version, list(schema.names), calibration.method)
        return LabelSetup(prompt, calibration, version)

    def _make_form(self, config: Config, pool: PoolCalibration | None) -> FormSetup:
        prompt = prompts.form(self.scorer.tokenizer, config, self.guidelines)
        calibrations = self._form_calibrations(config, prompt, pool)
        methods = {c.method for c in calibrations.values()}
        method = methods.pop() if len(methods) == 1 else "mixed"
        version = self._name(method, prompt.sha256, *(c.sha256 for c in calibrations.values()))
        log.info("model version %s for questions %s (calibration: %s)", version, list(config.names), method)
        return FormSetup(prompt, calibrations, version)

    @property
    def _pool_method(self) -> str:
        """The calibration a pool measure serves: the setting's, else domain-context (what a cascade's or a
        comparison's measure reads under another setting)."""
        return self.setting.pool if self.setting and self.setting.pool else "domain"

    def _form_calibrations(
        self, config: Config, prompt: prompts.Prompt, pool: PoolCalibration | None
    ) -> dict[str, cal.Calibration]:
        setting = self.setting
        if setting is None:
            calibrations, _, _ = cal.load_form(self.calibration)
            if set(calibrations) != set(config.names):
                raise cal.CalibrationError(
                    f"calibration {self.calibration} is for questions {sorted(calibrations)}, not {list(config.names)}"
                )
            return calibrations
        if setting.fitted != "never":
            fitted = self._find_fitted_form(config, prompt)
            if fitted and (setting.fitted == "require" or _fitted_applies(pool, prompt)):
                return fitted
            if setting.fitted == "require":
                raise cal.CalibrationError(
                    f"no fitted calibration in {self.calibration_dir}/forms for this model, prompt and questions "
                    "(run labelloop calibrate --sample)"
                )
        if setting.pool and pool is not None and pool.prompt_sha256 == prompt.sha256:
            return dict(pool.questions)
        content_free = None
        if setting.fallback == "contextual":
            content_free = self.scorer.label_logprobs(prompt, list(cal.CONTENT_FREE))
        return unfitted_calibrations(config, prompt, content_free)

    def _find_fitted_form(self, config: Config, prompt: prompts.Prompt) -> dict[str, cal.Calibration] | None:
        folder = self.calibration_dir / "forms" if self.calibration_dir else None
        if not folder or not folder.is_dir():
            return None
        for path in sorted(folder.glob("*.json")):
            calibrations, prompt_sha, identity = cal.load_form(path)
            if prompt_sha == prompt.sha256 and identity in (self.source.identity, self.source.weights):
                return calibrations
        return None

    def _calibration(
        self, prompt: prompts.Prompt, pool: cal.Calibration | None, fitted_applies: bool = True
    ) -> cal.Calibration:
        labels = prompt.labels
        setting = self.setting
        if setting is None:
            fitted = cal.Calibration.load(self.calibration)
            if fitted.labels != labels:  # names as the prompt shows them
                raise cal.CalibrationError(
                    f"calibration {self.calibration} is for labels {list(fitted.labels)}, not {list(labels)}"
                )
            return fitted
        if setting.fitted != "never":
            found = self._find_fitted(prompt)
            if found and (setting.fitted == "require" or fitted_applies):
                return found
            if setting.fitted == "require":
                raise cal.CalibrationError(
                    f"no fitted calibration in {self.calibration_dir} for this model, prompt and labels "
                    "(run labelloop calibrate)"
                )
        if setting.pool and pool is not None:
            return pool
        if setting.fallback == "none":
            return cal.identity(labels)
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
            log.info(
                "no calibration fitted for this engine; using %s, fitted on the same weights", same_weights[0].name
            )
            return same_weights[1]
        return None

    def answers(
        self, config: Config, texts: Sequence[str], pool: PoolCalibration | None = None
    ) -> dict[str, np.ndarray]:
        """Question → (n_texts, n_labels) probabilities: a distribution over the labels (single choice), or each
        label's own probability of applying (multi-label)."""
        return self.refine(config, texts, self.first_answers(config, texts, pool), pool)

    def first_answers(
        self, config: Config, texts: Sequence[str], pool: PoolCalibration | None = None
    ) -> dict[str, np.ndarray]:
        """The answers of the pass every text gets, the one hidden states come from: the served answers for one
        model, a cascade's first model's (backend/llm/cascade.py)."""
        if config.single:
            # Predictor's own: a cascade's probabilities() are its refined answers.
            return {config.primary.from_name: Predictor.probabilities(self, config.primary, texts, pool)}
        form = self.form_setup(config, pool)
        return form_probabilities(config, form.calibrations, self.scorer.label_logprobs(form.prompt, list(texts)))

    def first_version(self, config: Config, pool: PoolCalibration | None = None) -> str:
        """The version of first_answers(): version() for one model."""
        return self.version(config, pool)

    def refine(
        self,
        config: Config,
        texts: Sequence[str],
        first: dict[str, np.ndarray],
        pool: PoolCalibration | None = None,
        states: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """The served answers from the first pass's: the same for one model; a cascade answers again where unsure.
        `states`: the texts' hidden states at refine_layer(), where the caller holds them (else computed)."""
        return first

    def refine_layer(self, config: Config, pool: PoolCalibration | None = None) -> int:
        """The layer whose hidden states refine() reads; 0 for none."""
        return 0

    def answers_and_states(
        self, config: Config, texts: Sequence[str], layer: int, pool: PoolCalibration | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """first_answers(), and (n_texts, hidden) float32: `layer`'s output where the answer begins, same pass."""
        if config.single:
            probs, states = self.probabilities_and_states(config.primary, texts, layer, pool)
            return {config.primary.from_name: probs}, states
        setup = self.form_setup(config, pool)
        logprobs, states = self._state_scorer().logprobs_and_states(setup.prompt, list(texts), layers=[layer])
        return form_probabilities(config, setup.calibrations, logprobs), states[:, 0]

    def probabilities(self, schema: Schema, texts: Sequence[str], pool: PoolCalibration | None = None) -> np.ndarray:
        """(n_texts, n_labels) calibrated label probabilities, columns in the config's label order."""
        setup = self.setup(schema, pool)
        return setup.calibration.apply(self.feature_logprobs(setup, texts))

    @property
    def depth(self) -> int:
        """Decoder layers whose hidden states the engine can hand out; 0 for an engine behind an API."""
        return self._state_scorer().model.config.num_hidden_layers if hasattr(self.scorer, "logprobs_and_states") else 0

    def _state_scorer(self) -> StateScorer:
        # Only the in-process engine has hidden states to hand out (see depth).
        return cast(StateScorer, self.scorer)

    def probabilities_and_states(
        self, schema: Schema, texts: Sequence[str], layer: int, pool: PoolCalibration | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """first_answers()' probabilities, and (n_texts, hidden) float32: `layer`'s output where the answer begins,
        same pass."""
        setup = self.setup(schema, pool)
        logprobs, states = self._state_scorer().logprobs_and_states(
            setup.prompt, list(texts), setup.calibration.features, layers=[layer]
        )
        return setup.calibration.apply(logprobs), states[:, 0]

    def feature_logprobs(
        self, setup: LabelSetup, texts: Sequence[str], features: Sequence[str] | None = None
    ) -> np.ndarray:
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
                skipped.append(
                    {"index": i, "task": task.get("id") if isinstance(task, dict) else None, "reason": str(e)}
                )
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


def form_columns(config: Config) -> list[tuple[Schema, tuple[str, ...], list[int]]]:
    """Per question, its calibration's labels (a multi-label question's end with "none") and their answer columns
    into prompts.form's labels."""
    out, start = [], 0
    for q in config.questions:
        n = len(prompts.answers(q))
        labels = (*q.names, prompts.none_answer(q)) if q.multiple else q.names
        out.append((q, labels, list(range(start, start + n))))
        start += n
    return out


def form_probabilities(
    config: Config, calibrations: dict[str, cal.Calibration], logprobs: np.ndarray
) -> dict[str, np.ndarray]:
    """The answer lines' log-probabilities (columns as prompts.form orders them) → probabilities per question."""
    out = {}
    for q, _, cols in form_columns(config):
        c = calibrations[q.from_name]
        out[q.from_name] = c.apply_multilabel(logprobs[:, cols]) if q.multiple else c.apply(logprobs[:, cols])
    return out


def unfitted_calibrations(
    config: Config, prompt: prompts.Prompt, content_free: np.ndarray | None
) -> dict[str, cal.Calibration]:
    """Every question's calibration without labels: contextual from the content-free inputs' log-probabilities, or
    none; a multi-label question's with the default threshold per label."""
    out = {}
    for q, labels, cols in form_columns(config):
        features = [prompt.labels[c] for c in cols]
        c = (
            cal.identity(labels, features)
            if content_free is None
            else cal.contextual(labels, content_free[:, cols], features)
        )
        out[q.from_name] = cal.multilabel(c, len(q.names)) if q.multiple else c
    return out


def _fresh(pool: PoolCalibration | None, prompt: prompts.Prompt, from_name: str) -> cal.Calibration | None:
    """The pool's calibration of a question, unless it was measured under another prompt or other labels."""
    if pool is None or pool.prompt_sha256 != prompt.sha256:
        return None
    found = pool.get(from_name)
    return found if found is not None and found.labels == prompt.labels else None


def _fitted_applies(pool: PoolCalibration | None, prompt: prompts.Prompt) -> bool:
    """Whether a matching fitted file may serve under auto: until the pool was measured under this prompt nothing says
    otherwise; then its resemblance decides."""
    return pool is None or pool.prompt_sha256 != prompt.sha256 or pool.fitted_applies


def _multi(q: Schema, calibration: cal.Calibration) -> cal.Calibration:
    return cal.multilabel(calibration, len(q.names)) if q.multiple else calibration
