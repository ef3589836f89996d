"""The labeling loop per project: predict with the LLM or the promoted model, retrain on submitted labels, re-rank.

- Predictions come from the project's promoted model (a blend of text vectors and the LLM's probabilities, see
  classifier.py and features.py) when there is one, else from the LLM alone; every prediction carries the version
  that made it, and its `score` is the task's priority under the project's ranking strategy (lower = asked sooner).
- Training runs (training.py) and pool re-scores (rescoring.py) run in the background, one at a time per project
  (jobs.py); the per-project state they share has one owner (projects.py), and they see the loop only through a
  Gateway (gateway.py): training returns whether the pool is due a re-score, and the loop asks for it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypedDict

import numpy as np

from backend.errors import LabelloopError
from backend.labelstudio import queue as ls_queue
from backend.labelstudio.schema import Config, Schema, as_config
from backend.llm import calibration as cal
from backend.llm import scorer as llm_scorer
from backend.llm.predictor import PoolCalibration, Predictor
from backend.loop import rescoring, training
from backend.loop.answers import ranking_inputs, regions
from backend.loop.features import TextFeatures
from backend.loop.gateway import Gateway
from backend.loop.jobs import CoalescingJobs
from backend.loop.projects import ModelSet, PoolRanking, Projects, TrainingRecord
from backend.metrics import Metrics
from backend.ranking import questions as question_ranking
from backend.ranking import strategies
from backend.settings import Settings

log = logging.getLogger(__name__)

TRAINING_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING"})


class CalibrationRecord(TypedDict):
    """What calibrates a project's LLM answers and why (/versions "calibration")."""

    methods: list[str]  # the methods serving its questions
    pool_size: int | None  # the pool texts measured (None before the pool was read)
    resemblance: float | None  # the pool's resemblance to a matching fitted file's texts
    resemblance_needed: float  # the least at which the fitted file serves
    reason: str


@dataclass(frozen=True)
class _Request:
    """What a /predict request fills its predictions with, the same for each of its chunks."""

    config: Config
    tasks: Sequence[Any]
    version: str  # the name its predictions carry
    strategy: str
    lanes: int
    weights: dict  # how much each question counts in the ranking (rescoring.question_weights)
    learned: dict[str, np.ndarray]  # the labels each question's model learned (rescoring.learned_labels)
    ranking: PoolRanking | None
    pool: PoolCalibration | None


class LoopError(LabelloopError, ValueError):
    """A request the loop cannot honour (unknown strategy, training without Label Studio); answered with 4xx."""

    http_status = 400


class Loop:
    """`client_factory` makes the Label Studio client (default: an SDK client from the settings); pass another, or
    set the attribute before the first call to `client()`, to talk to something else (a fake, in tests)."""

    def __init__(
        self,
        settings: Settings,
        predictor: Callable[[], Predictor],
        metrics: Metrics,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self._predictor = predictor
        self.metrics = metrics
        self.text = TextFeatures(settings, predictor)
        self.projects = Projects(settings)
        self.client_factory = client_factory or self._connect
        self._client = None
        self.training = CoalescingJobs(self.train, "training")
        self.rescoring = CoalescingJobs(self.rescore, "rescore")

    # ---------------------------------------------------------------- settings per project

    def set_lanes(self, project: str, lanes: Any) -> None:
        """How many annotators work the project's queue at once: one Data Manager tab each (labelstudio/queue.py)."""
        try:
            lanes = ls_queue.check_lanes(lanes)
        except ls_queue.LanesError as e:
            raise LoopError(str(e)) from None
        if self.projects.save_setting(project, "lanes", lanes) and self.settings.label_studio_url:
            self.rescoring.request(project)  # the scores carry the lanes: every task needs a new one

    def set_strategy(self, project: str, name: str) -> None:
        check_strategy(name)
        if self.projects.save_setting(project, "strategy", name) and self.settings.label_studio_url:
            self.rescoring.request(project)  # the queue's order is the strategy's, model or not

    def connected(self, project: str | None, config: Config | Schema) -> None:
        """A project connected (/setup): with Label Studio reachable, its pool is read and re-scored in the background,
        which first measures the project's own calibration when one would serve (ensure_pool)."""
        if not project or not (self.settings.label_studio_url and self.settings.ls_api_key()):
            return
        # Label Studio calls /setup several times at connect: a re-score already running measures the pool once.
        if (
            self._predictor().wants_pool(as_config(config), self.pool(project))
            and not self.projects.model(project)
            and not self.rescoring.busy(project)
        ):
            self.rescoring.request(project)

    def serving(self, project: str | None, config: Config | Schema) -> tuple[ModelSet | None, str]:
        """The project's promoted models that fit this config and LLM (None when no question has one: the LLM alone),
        and the version."""
        config = as_config(config)
        llm_version = self._predictor().version(config, self.pool(project))
        current = self.projects.model(project) if project else None
        if current is None or not current.fitting(config, llm_version):
            return None, llm_version
        return current, current.version

    def pool(self, project: str | None) -> PoolCalibration | None:
        """The project's calibration measured on its own texts (predictor.py), once measured."""
        return self.projects.pool(project) if project else None

    def ensure_pool(self, project: str, config: Config, texts: Sequence[str]) -> bool:
        """Measure the project's pool calibration from its texts when the pool decides the calibration and none fits
        the prompt; True if it was measured now (the version may change). Not for a project that already serves a
        trained model: the model was fitted on the old calibration's probabilities and would be dropped."""
        predictor = self._predictor()
        if not texts or not predictor.wants_pool(config, self.pool(project)) or self.projects.model(project):
            return False
        measured = predictor.measure_pool(config, texts, self.text.embedder.encode)
        self.projects.set_pool(project, measured)
        log.info(
            "project %s: calibrated on %d of its texts (%s); %s",
            project,
            measured.size,
            predictor.version(config, measured),
            measured.reason("fitted" in predictor.methods(config, measured)),
        )
        return True

    def calibration_record(self, project: str, config: Config) -> CalibrationRecord:
        """What calibrates the project's LLM answers and why (/versions): the methods serving its questions, and
        what the pool measure found (None before the pool was read)."""
        pool = self.pool(project)
        methods = self._predictor().methods(config, pool)
        return {
            "methods": sorted(methods),
            "pool_size": pool.size if pool else None,
            "resemblance": None if pool is None or pool.resemblance is None else round(pool.resemblance, 4),
            "resemblance_needed": cal.RESEMBLANCE,
            "reason": pool.reason("fitted" in methods) if pool else "the pool has not been read yet",
        }

    def answers(
        self,
        config: Config | Schema,
        texts: Sequence[str],
        model: ModelSet | None,
        pool: PoolCalibration | None = None,
    ) -> dict[str, np.ndarray]:
        """Every question's probabilities: its trained model's where it has one, the LLM's for the others."""
        config = as_config(config)
        llm, llm_version = self.text.llm_answers(config, texts, pool)
        answers = dict(llm)
        if model is None:
            return answers
        fitting = model.fitting(config, llm_version)
        read = self.text.first_answers(config, texts, pool)[0] if fitting else {}  # as at training (training.run)
        for name, trained in fitting.items():
            # A hidden state comes from the pass that scored the texts above: a cache lookup, not a second pass.
            vectors = self.text.vectors(config, texts, trained.features, pool)
            answers[name] = trained.model.predict_proba(vectors, read[name])
        return answers

    # ---------------------------------------------------------------- predictions

    def predict(
        self, project: str | None, config: Config | Schema, tasks: Sequence[Any]
    ) -> tuple[list[dict], list[dict], str]:
        """One prediction per task, in order; the skipped tasks with their reason; the version that answered.

        Texts are scored in chunks, and concurrent requests' chunks take turns on the model, so a large request
        cannot hold small ones back for long. Tasks not reached within PREDICT_TIMEOUT are answered as skipped:
        Label Studio gives up on a request after 100 s, and an answer in time with most tasks beats none."""
        started = time.monotonic()
        config = as_config(config)
        predictor = self._predictor()
        texts, slots, skipped = predictor.task_texts(config.primary, tasks)  # every question reads the same text
        model, version = self.serving(project, config)
        ranking = self.projects.rankings.get(project) if project else None
        if ranking and ranking.version == version:
            version = ranking.published  # the name the project's queue counts
        if project:
            self.projects.note_published(project, version)
        results: list[dict] = [{"result": [], "score": 0.0, "model_version": version} for _ in tasks]
        request = _Request(
            config=config,
            tasks=tasks,
            version=version,
            strategy=self.projects.strategy(project) if project else self.settings.rank_strategy,
            lanes=self.projects.lanes(project) if project else 1,
            weights=rescoring.question_weights(self.settings, self.projects, project, config.names),
            learned=rescoring.learned_labels(self.text, config, model, self.pool(project)),
            ranking=ranking,
            pool=self.pool(project),
        )
        chunk = self.settings.predict_chunk
        # Also checked when the model takes a chunk up: the wait behind other requests' chunks can be long.
        deadline = llm_scorer.DEADLINE.set(started + self.settings.predict_timeout)
        try:
            for start in range(0, len(texts), chunk):
                batch = texts[start : start + chunk]
                try:
                    if time.monotonic() - started > self.settings.predict_timeout:
                        raise llm_scorer.DeadlineExceeded
                    answers = self.answers(config, batch, model, self.pool(project))
                except llm_scorer.DeadlineExceeded:
                    reason = f"not predicted within {self.settings.predict_timeout} s (PREDICT_TIMEOUT); ask again"
                    skipped += [{"index": i, "task": _task_id(tasks[i]), "reason": reason} for i in slots[start:]]
                    self.metrics.timeouts.inc(len(slots) - start)
                    break
                self._fill(request, results, slots[start : start + chunk], batch, answers)
        finally:
            llm_scorer.DEADLINE.reset(deadline)
        skipped.sort(key=lambda item: item["index"])
        return results, skipped, version

    def _fill(
        self,
        request: _Request,
        results: list[dict],
        slots: Sequence[int],
        batch: Sequence[str],
        answers: dict[str, np.ndarray],
    ) -> None:
        """Each task's prediction, with the pool ranking's score when the task has one, else its own."""
        r = request
        # The LLM's probabilities were just cached by answers(): reading them again costs a lookup.
        needs_llm = r.strategy in strategies.REGISTRY and strategies.REGISTRY[r.strategy].needs_llm_probs
        llm = self.text.llm_answers(r.config, batch, r.pool)[0] if needs_llm else None
        inputs = ranking_inputs(r.config, answers, llm, r.learned)
        priority = question_ranking.pointwise_priority(r.strategy, inputs, r.weights)
        for i, (slot, own) in enumerate(zip(slots, priority)):
            task_id = _task_id(r.tasks[slot])
            if r.ranking and r.ranking.published == r.version and task_id in r.ranking.priorities:
                own = r.ranking.priorities[task_id]
            else:
                own = ls_queue.task_score(own, task_id, r.lanes)
            results[slot] = {
                "result": regions(r.config, {name: probs[i] for name, probs in answers.items()}),
                "score": round(float(own), 6),
                "model_version": r.version,
            }

    # ---------------------------------------------------------------- training and re-scoring (background jobs)

    def request_training(self, project: str, task_id: Any = None) -> str:
        """Ask for a run. With the task an annotation event names, the run re-reads only the tasks changed since
        the last run; without one (deletions, "Start training", a restart) it reads every labeled task again."""
        if not (self.settings.label_studio_url and self.settings.ls_api_key()):
            raise LoopError(
                "training needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or LABEL_STUDIO_API_KEY_FILE) "
                "to fetch the labels"
            )
        self.metrics.training_requests.inc()
        training.note_change(self.projects, project, task_id)
        return self.training.request(project)

    def train(self, project: str) -> TrainingRecord:
        """One training run; the result also goes to the registry, the log and /metrics."""
        started = time.perf_counter()
        try:
            with self.projects.store(project).training_lock():  # replicas sharing DATA_DIR take turns
                record, rescore_due = training.run(self.gateway(), project, started)
        except Exception as e:
            self.metrics.training_runs.labels("failed").inc()
            log.exception("training for project %s failed; the serving model is unchanged", project)
            return {"result": "failed", "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
        self.metrics.training_runs.labels(record["result"]).inc()
        self.metrics.training_seconds.observe(record["seconds"])
        log.info("training for project %s: %s", project, {k: v for k, v in record.items() if k != "stats"})
        if rescore_due:
            self.rescoring.request(project)
        return record

    def rescore(self, project: str) -> None:
        rescoring.run(self.gateway(), project)

    def gateway(self) -> Gateway:
        """What a background run uses of the loop, read when the run starts."""
        return Gateway(
            self.settings,
            self.metrics,
            self.projects,
            self.text,
            self.client,
            self.with_retries,
            self.answers,
            self.serving,
            self.ensure_pool,
            self.rescoring.busy,
        )

    def busy(self, project: str) -> bool:
        return self.training.busy(project) or self.rescoring.busy(project)

    # ---------------------------------------------------------------- Label Studio

    def _connect(self):
        from backend.labelstudio import client as ls_client

        return ls_client.connect(self.settings.label_studio_url, self.settings.ls_api_key()).client

    def client(self):
        """One SDK client, made on first use (it checks the URL and key) and kept: it refreshes its own token."""
        if self._client is None:
            self._client = self.with_retries("connecting to Label Studio", self.client_factory)
        return self._client

    def with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        """Label Studio may restart or be busy; back off 1, 2, 4 s before giving up on this run."""
        delays = [1.0, 2.0, 4.0][: self.settings.ls_retries]
        for attempt in range(len(delays) + 1):
            try:
                return call()
            except Exception as e:
                self.metrics.ls_errors.inc()
                # A refused token or a missing project will not change on a retry; network trouble may.
                if attempt == len(delays) or not getattr(e, "retryable", True):
                    raise
                log.warning("%s failed (%s); retrying in %.0f s", what, str(e).splitlines()[0][:200], delays[attempt])
                time.sleep(delays[attempt])


def _task_id(task: Any) -> Any:
    return task.get("id") if isinstance(task, dict) else None


def check_strategy(name: Any) -> str:
    if not isinstance(name, str) or name not in strategies.REGISTRY:
        raise LoopError(f"unknown ranking strategy {name!r}; use one of {', '.join(strategies.REGISTRY)}")
    return name
