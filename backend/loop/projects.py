"""Per-project state in one owner: the registry on disk (the serving model, the strategy, the lanes, the prediction
sets written) as this process last read it, the pool's ranking, the coverage, and the labels as of the last run.

Several replicas may share DATA_DIR (docs/scale.md): every read first checks the registry's stamp, so a model another
replica promoted, or a strategy it set, is seen at the next request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

from backend.labelstudio.schema import Config, Schema
from backend.labelstudio.tasks import GoldVote, LabeledTask
from backend.learning import classifier
from backend.llm.calibration import CalibrationError
from backend.llm.predictor import PoolCalibration
from backend.loop.features import MINILM
from backend.loop.model_store import ModelStore
from backend.loop.routing import Coverage, RoutingRecord
from backend.settings import Settings


class SelfTrainingRecord(TypedDict):
    """What one round of self-training joined to a question's labels (backend/learning/self_training.py)."""

    unlabeled: int  # the sample of unlabeled tasks the pseudo-labels were drawn from
    pseudo_labels: int  # how many joined the labels
    per_label: dict[str, int]  # of them, per predicted label


class QuestionRecord(TypedDict, total=False):
    """What a training run records of one question (registry.json, GET /versions, the project page)."""

    labels: int  # the question's labeled tasks
    result: str  # "promoted", "kept" or "skipped" ("failed" for a whole run that raised)
    reason: str  # why it was skipped
    consensus: dict[str, Any]  # CONSENSUS=crowdlab: how the labels were made from the votes
    calibration_loglik: dict[str, float]  # the labels' mean log-likelihood under each label-free calibration
    recipe: str  # the recipe its labels chose (backend/learning/recipes.py)
    recipe_scores: dict[str, float]  # every candidate's cross-validated macro-F1
    label_issues: int  # the labels the model doubts
    routing: RoutingRecord  # routing.routing_record: how much of the pool the model may label
    incumbent: str  # the version that served it when the run began
    cv_macro_f1: float  # the chosen recipe's, out of fold
    incumbent_macro_f1: float  # what served it, on the same labels
    llm_macro_f1: float  # the LLM's served answers, on the same labels
    self_training: SelfTrainingRecord  # below 50 labels, what the promoted model learned from beyond the labels


class TrainingRecord(QuestionRecord, total=False):
    """A training run's record, one entry of the registry's versions: the first question's record at the top level
    (as when only it learned), every question's under "questions"; labels, result and incumbent are the run's."""

    stats: dict[str, Any]  # what fetching the labels read
    strategy: str
    features: str  # the text vectors trained on (TextFeatures.features)
    gold: list[dict[str, Any]]  # each annotator's answers on gold tasks
    review_tab: Any  # the Data Manager tab of labels to review, or None
    questions: dict[str, QuestionRecord]
    version: str
    promoted: bool  # the store keeps models for a promoted version only
    created: str
    seconds: float
    fit_seconds: float
    error: str  # a failed run's first line


@dataclass
class TrainedModel:
    """One question's model, as a promotion saves it: the fitted blend and what it needs to be judged fairly later.
    Fields with defaults may be missing from a model saved by an earlier release (the class's default is read)."""

    version: str  # the training run that made it
    labels: tuple[str, ...]
    llm_version: str
    model: classifier.Model  # what the chosen recipe fitted (backend/learning/recipes.py)
    heldout: dict[int, tuple[int, int]] = field(default_factory=dict)  # task → (label index then, out-of-fold guess)
    features: str = MINILM  # the text vectors it was trained on: MINILM or "llm-layer-<n>"
    question: str = ""  # the from_name it answers; "" (saved before every question learned): the config's first
    score: float | None = None  # its cross-validated macro-F1 when it was promoted

    def as_data(self) -> dict[str, Any]:
        """Plain values and arrays (ModelStore saves them), the model by its parts."""
        return {
            "version": self.version,
            "labels": list(self.labels),
            "llm_version": self.llm_version,
            "model": classifier.to_parts(self.model),
            "heldout": [[task, label, guess] for task, (label, guess) in self.heldout.items()],
            "features": self.features,
            "question": self.question,
            "score": self.score,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> "TrainedModel":
        return cls(
            data["version"],
            tuple(data["labels"]),
            data["llm_version"],
            classifier.from_parts(data["model"]),
            heldout={int(task): (int(label), int(guess)) for task, label, guess in data["heldout"]},
            features=data["features"],
            question=data["question"],
            score=data["score"],
        )


@dataclass
class ModelSet:
    """What a project serves: a model per question that has one (the LLM answers the others), named by the project
    model version of the run that last promoted any of them."""

    version: str
    models: dict[str, TrainedModel]  # by question from_name ("" for a model saved before every question learned)

    def as_data(self) -> dict[str, Any]:
        return {"version": self.version, "models": {name: model.as_data() for name, model in self.models.items()}}

    @classmethod
    def of(cls, saved: "dict[str, Any] | ModelSet | TrainedModel") -> "ModelSet":
        """A set as saved (as_data's document; a pickled set before format 3), or a single model as format 1 saved
        it: the set of the config's first question."""
        if isinstance(saved, dict):
            models = {name: TrainedModel.from_data(model) for name, model in saved["models"].items()}
            return cls(saved["version"], models)
        return saved if isinstance(saved, ModelSet) else cls(saved.version, {saved.question: saved})

    def saved_for(self, config: Config, question: Schema) -> TrainedModel | None:
        """The model saved for the question, whether or not it still fits."""
        found = self.models.get(question.from_name)
        return self.models.get("") if found is None and question is config.primary else found

    def model_for(self, config: Config, question: Schema, llm_version: str) -> TrainedModel | None:
        """The question's model if it was trained for these labels and this LLM version, else None."""
        found = self.saved_for(config, question)
        if found is None or tuple(found.labels) != tuple(question.labels) or found.llm_version != llm_version:
            return None
        return found

    def fitting(self, config: Config, llm_version: str) -> dict[str, TrainedModel]:
        """Every question's model that fits, by from_name."""
        fits = {q.from_name: self.model_for(config, q, llm_version) for q in config.questions}
        return {name: model for name, model in fits.items() if model is not None}

    def learned(self, config: Config, llm_version: str) -> dict[str, Any]:
        """The label indices each fitting question's model learned (answers.ranking_inputs reads them), by from_name."""
        return {name: trained.model.learned for name, trained in self.fitting(config, llm_version).items()}

    @property
    def trained_on(self) -> set[int]:
        """The tasks any of its models was trained on."""
        return {task for model in self.models.values() for task in model.heldout}


@dataclass
class PoolRanking:
    version: str  # the model version that ranked the pool
    published: str  # the version name its predictions carry in Label Studio
    priorities: dict[int, float]  # task → score written (lane + priority)


def serving_score(question: Any) -> float | None:
    """What served a question at a training run scored on its labels: the promoted model's cross-validated macro-F1,
    else the incumbent's; None for a question the run skipped or taught before its first label."""
    if not isinstance(question, dict) or question.get("result") not in ("promoted", "kept"):
        return None
    # A model taught before the first label (training.teach) has no label to be scored on.
    return question.get("cv_macro_f1") if question["result"] == "promoted" else question["incumbent_macro_f1"]


class Projects:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._models: dict[str, ModelSet | None] = {}
        self._strategies: dict[str, str] = {}
        self._lanes: dict[str, int] = {}
        self._pools: dict[str, PoolCalibration | None] = {}
        self._scores: dict[str, dict] = {}  # the newest run's per-question record
        self._published: set[tuple[str, str]] = set()  # (project, version) known to be in the registry's list
        self._stamps: dict[str, tuple[int, int] | None] = {}  # the registry as this process last read or wrote it
        self.rankings: dict[str, PoolRanking] = {}
        self.coverage: dict[str, Coverage] = {}  # project → how much of the pool the model may label (routing.py)
        self.tasks: dict[str, list[tuple[int, str]]] = {}  # project → (id, text) of its tasks, as last read
        # Labels per project as of the last run, and the tasks changed since (None: read everything again).
        self.labels: dict[str, dict[int, LabeledTask]] = {}
        self.gold_votes: dict[str, dict[int, list[GoldVote]]] = {}  # per project, each gold task's answers
        self.changed: dict[str, set[int] | None] = {}
        self.changes_lock = threading.Lock()

    def store(self, project: str) -> ModelStore:
        return ModelStore(self.settings.data_dir, project)

    def on_disk(self) -> list[str]:
        """Every project with a registry in DATA_DIR, whichever replica wrote it."""
        return ModelStore.projects(self.settings.data_dir)

    def refresh(self, project: str) -> None:
        """Re-read the project's registry when it changed on disk: another replica sharing DATA_DIR promoted a
        model or set the strategy. A stat per call; the model and strategy are read only after a change."""
        stamp = self.store(project).stamp()
        if project in self._stamps and self._stamps[project] == stamp:
            return
        first = project not in self._stamps
        self._stamps[project] = stamp
        current = self.store(project).current()
        self._models[project] = ModelSet.of(current[1]) if current else None
        self._strategies.pop(project, None)
        self._lanes.pop(project, None)
        self._pools.pop(project, None)
        self._scores.pop(project, None)
        if not first:
            with self.changes_lock:
                self.changed[project] = None  # another replica saw events this one did not: read every label

    def wrote(self, project: str) -> None:
        self._stamps[project] = self.store(project).stamp()
        self._scores.pop(project, None)  # a run's record may have come with the write

    def model(self, project: str) -> ModelSet | None:
        self.refresh(project)
        return self._models[project]

    def pool(self, project: str) -> PoolCalibration | None:
        """The project's calibration measured on its own texts, as kept in its registry (None: not measured)."""
        self.refresh(project)
        if project not in self._pools:
            data = self.store(project).setting("pool_calibration")
            try:
                self._pools[project] = PoolCalibration.from_dict(data) if data else None
            except CalibrationError:
                self._pools[project] = None  # measured again at the next re-score
        return self._pools[project]

    def set_pool(self, project: str, pool: PoolCalibration) -> None:
        self.store(project).set_setting("pool_calibration", pool.as_dict())
        self.wrote(project)
        self._pools[project] = pool
        self.rankings.pop(project, None)

    def promoted(self, project: str, model: ModelSet) -> None:
        self._models[project] = model

    def strategy(self, project: str) -> str:
        self.refresh(project)
        if project not in self._strategies:
            self._strategies[project] = self.store(project).setting("strategy", self.settings.rank_strategy)
        return self._strategies[project]

    def lanes(self, project: str) -> int:
        self.refresh(project)
        if project not in self._lanes:
            self._lanes[project] = self.store(project).setting("lanes", 1)
        return self._lanes[project]

    def save_setting(self, project: str, name: str, value: Any) -> bool:
        """Keep "strategy" or "lanes" for the project; False if it already had that value. A change drops the pool's
        ranking, which was made under the old one."""
        current = self.strategy(project) if name == "strategy" else self.lanes(project)
        if value == current:
            return False
        self.store(project).set_setting(name, value)
        self.wrote(project)
        (self._strategies if name == "strategy" else self._lanes)[project] = value
        self.rankings.pop(project, None)
        return True

    def note_published(self, project: str, version: str, again: bool = False) -> None:
        """Remember that predictions of `version` reach the project, so housekeeping may delete them later; with
        `again`, note it as the newest even if noted before (a set being written anew)."""
        if again or (project, version) not in self._published:
            self.store(project).add_published(version)
            self.wrote(project)
            self._published.add((project, version))

    def versions(self, project: str) -> list[TrainingRecord]:
        return cast(list[TrainingRecord], self.store(project).versions())  # the registry keeps each run's record

    def question_scores(self, project: str, names: tuple[str, ...]) -> dict[str, float | None]:
        """Each question's macro-F1, on the project's labels, of what serves it, as the newest training run measured
        it (the promoted model's cross-validated score, else the incumbent's); None where no run measured it."""
        # Read from the registry once per change of it, not at every /predict.
        self.refresh(project)
        if project not in self._scores:
            newest: dict = next(
                (r["questions"] for r in reversed(self.versions(project)) if isinstance(r.get("questions"), dict)), {}
            )
            self._scores[project] = newest
        return {name: serving_score(self._scores[project].get(name)) for name in names}
