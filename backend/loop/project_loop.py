"""The labeling loop per project: predict with the LLM or the promoted blend, retrain on submitted labels, re-rank.

- Predictions come from the project's promoted model (a blend of text vectors and the LLM's probabilities, see
  classifier.py) when there is one, else from the LLM alone. The vectors are the LLM's own hidden state where the
  answer begins, at LLM_FEATURE_DEPTH of its layers, from the pass that scores the text (MiniLM sentence
  embeddings where the engine exposes none, LLM_ENGINE=openai, or LLM_FEATURE_DEPTH=0); every prediction carries the version that made it,
  and its `score` is the task's priority under the project's ranking strategy (lower = asked sooner).
- A training run fetches the project's labels from Label Studio, fits a candidate, and promotes it only when its
  cross-validated macro-F1 beats the serving model's on the same labels. The serving model is judged on labels it
  never saw: the LLM on all of them; a promoted blend by its own out-of-fold predictions, kept from its training,
  for the tasks it was trained on (with the label they had then) and by its predictions for every other task.
- After a promotion the pool is re-scored in the background, in chunks: every task gets a prediction from the new
  version with its priority in the whole pool (and its lane, backend/labelstudio/queue.py), then the project's model_version
  is switched, so Label Studio serves tasks in the strategy's order, and the older prediction sets this backend
  wrote are deleted (KEEP_PREDICTION_VERSIONS). A set is written under a version name Label Studio does not hold
  yet: the model's version, or "<version>+2", "+3"... when the same model's pool is ranked again (Label Studio
  would keep both sets under one name, and one name cannot be deleted without the other).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.metrics import f1_score

from backend.loop import classifier
from backend.ranking import judge
from backend.quality import gold, label_issues
from backend.labelstudio import queue as ls_queue
from backend.labelstudio import tasks as ls_tasks
from backend.loop import routing
from backend.ranking import strategies
from backend.llm import scorer as llm_scorer
from backend.labelstudio import schema as schemas
from backend.loop.embeddings import Embedder
from backend.loop.jobs import CoalescingJobs
from backend.serving.metrics import Metrics
from backend.loop.model_store import ModelStore
from backend.llm.predictor import Predictor
from backend.labelstudio.schema import Schema
from backend.settings import Settings
from backend.loop.vectors import VectorCache

log = logging.getLogger(__name__)

TRAINING_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED", "START_TRAINING"})
MINILM = "minilm"


class LoopError(ValueError):
    """A request the loop cannot honour (unknown strategy, training without Label Studio); answered with 4xx."""


@dataclass
class TrainedModel:
    """What a promotion saves: the fitted blend and what it needs to be judged fairly later."""

    version: str
    labels: tuple[str, ...]
    llm_version: str
    model: classifier.Classifier
    heldout: dict[int, tuple[int, int]] = field(default_factory=dict)  # task → (label index then, out-of-fold guess)
    features: str = MINILM  # the text vectors it was trained on: MINILM or "llm-layer-<n>"


@dataclass
class PoolRanking:
    version: str  # the model version that ranked the pool
    published: str  # the version name its predictions carry in Label Studio
    priorities: dict[int, float]  # task → score written (lane + priority)


def _macro_f1(y: np.ndarray, guess: np.ndarray) -> float:
    return float(f1_score(y, guess, labels=np.unique(y), average="macro", zero_division=0))


class Loop:
    def __init__(self, settings: Settings, predictor: Callable[[], Predictor], metrics: Metrics, client_factory=None) -> None:
        self.settings = settings
        self._predictor = predictor
        self.metrics = metrics
        self.embedder = Embedder(settings.data_dir / "cache" / "embeddings.npz")
        self._llm_caches: dict[str, VectorCache] = {}
        self._models: dict[str, TrainedModel | None] = {}
        self._rankings: dict[str, PoolRanking] = {}
        self._strategies: dict[str, str] = {}
        self._lanes: dict[str, int] = {}
        self.coverage: dict[str, dict] = {}  # project → how much of the pool the model may label (routing.py)
        self._published: set[tuple[str, str]] = set()  # (project, version) known to be in the registry's list
        self._stamps: dict[str, tuple[int, int] | None] = {}  # the registry as this process last read or wrote it
        self._client_factory = client_factory or self._connect
        self._client = None
        # Labels per project as of the last run, and the tasks changed since (None: read everything again).
        self._labels: dict[str, dict[int, ls_tasks.LabeledTask]] = {}
        self._changed: dict[str, set[int] | None] = {}
        self._changes_lock = threading.Lock()
        self.training = CoalescingJobs(self.train, "training")
        self.rescoring = CoalescingJobs(self.rescore, "rescore")

    # ---------------------------------------------------------------- per-project state

    def store(self, project: str) -> ModelStore:
        return ModelStore(self.settings.data_dir, project)

    def _refresh(self, project: str) -> None:
        """Re-read the project's registry when it changed on disk: another replica sharing DATA_DIR promoted a
        model or set the strategy. A stat per call; the model and strategy are read only after a change."""
        stamp = self.store(project).stamp()
        if project in self._stamps and self._stamps[project] == stamp:
            return
        first = project not in self._stamps
        self._stamps[project] = stamp
        current = self.store(project).current()
        self._models[project] = current[1] if current else None
        self._strategies.pop(project, None)
        self._lanes.pop(project, None)
        if not first:
            with self._changes_lock:
                self._changed[project] = None  # another replica saw events this one did not: read every label

    def _wrote(self, project: str) -> None:
        self._stamps[project] = self.store(project).stamp()

    def model(self, project: str) -> TrainedModel | None:
        self._refresh(project)
        return self._models[project]

    def strategy(self, project: str) -> str:
        self._refresh(project)
        if project not in self._strategies:
            self._strategies[project] = self.store(project).setting("strategy", self.settings.rank_strategy)
        return self._strategies[project]

    def lanes(self, project: str) -> int:
        self._refresh(project)
        if project not in self._lanes:
            self._lanes[project] = self.store(project).setting("lanes", 1)
        return self._lanes[project]

    def set_lanes(self, project: str, lanes: Any) -> None:
        """How many annotators work the project's queue at once: one Data Manager tab each (backend/labelstudio/queue.py)."""
        try:
            lanes = ls_queue.check_lanes(lanes)
        except ls_queue.LanesError as e:
            raise LoopError(str(e)) from None
        if lanes != self.lanes(project):
            self.store(project).set_setting("lanes", lanes)
            self._wrote(project)
            self._lanes[project] = lanes
            self._rankings.pop(project, None)
            if self.settings.label_studio_url:
                self.rescoring.request(project)  # the scores carry the lanes: every task needs a new one

    def _note_published(self, project: str, version: str) -> None:
        """Remember that predictions of `version` reach the project, so housekeeping may delete them later."""
        if (project, version) not in self._published:
            self.store(project).add_published(version)
            self._wrote(project)
            self._published.add((project, version))

    def set_strategy(self, project: str, name: str) -> None:
        check_strategy(name)
        if name != self.strategy(project):
            self.store(project).set_setting("strategy", name)
            self._wrote(project)
            self._strategies[project] = name
            self._rankings.pop(project, None)
            if self.settings.label_studio_url:
                self.rescoring.request(project)  # the queue's order is the strategy's, model or not

    # ---------------------------------------------------------------- features

    def _cache(self, name: str) -> VectorCache:
        if name not in self._llm_caches:
            self._llm_caches[name] = VectorCache(self.settings.data_dir / "cache" / f"{name}.npz")
        return self._llm_caches[name]

    def llm_probs(self, schema: Schema, texts: Sequence[str]) -> tuple[np.ndarray, str]:
        """Calibrated LLM probabilities (cached per text and LLM version) and that version."""
        predictor = self._predictor()
        version = predictor.setup(schema).model_version
        probs = self._cache(f"llm-{version}").get(list(texts), lambda missing: predictor.probabilities(schema, missing))
        return probs.reshape(len(texts), len(schema.labels)), version

    @staticmethod
    def recipe(features: str) -> str:
        """The classifier recipe for a kind of text vectors (backend/loop/classifier.py)."""
        return "blend" if features == MINILM else "state_blend"

    def features(self) -> str:
        """The text vectors a new model is trained on (see the module's docstring)."""
        depth = self._predictor().depth
        layer = round(self.settings.llm_feature_depth * depth)
        return f"llm-layer-{layer}" if layer >= 1 else MINILM

    def vectors(self, schema: Schema, texts: Sequence[str], features: str) -> np.ndarray:
        """The texts' vectors of kind `features`, cached per text. A hidden state comes from the pass that scores
        the text, so the LLM's probabilities are cached with it and a following llm_probs() costs a lookup."""
        if features == MINILM:
            return self.embedder.encode(texts)
        layer = int(features.rsplit("-", 1)[1])
        predictor = self._predictor()
        version = predictor.setup(schema).model_version

        def compute(missing: list[str]) -> np.ndarray:
            probs, states = predictor.probabilities_and_states(schema, missing, layer)
            self._cache(f"llm-{version}").put(missing, probs)
            return states

        return self._cache(f"states-{version}-L{layer}").get(list(texts), compute)

    def serving(self, project: str | None, schema: Schema) -> tuple[TrainedModel | None, str]:
        """The project's promoted model if it fits this config and LLM (else None: the LLM alone), and the version."""
        llm_version = self._predictor().setup(schema).model_version
        current = self.model(project) if project else None
        if current is None or current.labels != schema.labels or current.llm_version != llm_version:
            return None, llm_version
        return current, current.version

    def probabilities(self, schema: Schema, texts: Sequence[str], model: TrainedModel | None) -> np.ndarray:
        if model is None:
            return self.llm_probs(schema, texts)[0]
        vectors = self.vectors(schema, texts, getattr(model, "features", MINILM))  # older models lack the field
        return model.model.predict_proba(vectors, self.llm_probs(schema, texts)[0])

    # ---------------------------------------------------------------- predictions

    def predict(self, project: str | None, schema: Schema, tasks: Sequence[Any]) -> tuple[list[dict], list[dict], str]:
        """One prediction per task, in order; the skipped tasks with their reason; the version that answered.

        Texts are scored in chunks, and concurrent requests' chunks take turns on the model, so a large request
        cannot hold small ones back for long. Tasks not reached within PREDICT_TIMEOUT are answered as skipped:
        Label Studio gives up on a request after 100 s, and an answer in time with most tasks beats none."""
        started = time.monotonic()
        predictor = self._predictor()
        texts, slots, skipped = predictor.task_texts(schema, tasks)
        model, version = self.serving(project, schema)
        ranking = self._rankings.get(project) if project else None
        if ranking and ranking.version == version:
            version = ranking.published  # the name the project's queue counts
        if project:
            self._note_published(project, version)
        results: list[dict] = [{"result": [], "score": 0.0, "model_version": version} for _ in tasks]
        strategy = self.strategy(project) if project else self.settings.rank_strategy
        lanes = self.lanes(project) if project else 1
        chunk = self.settings.predict_chunk
        # Also checked when the model takes a chunk up: the wait behind other requests' chunks can be long.
        deadline = llm_scorer.DEADLINE.set(started + self.settings.predict_timeout)
        try:
            for start in range(0, len(texts), chunk):
                batch = texts[start : start + chunk]
                try:
                    if time.monotonic() - started > self.settings.predict_timeout:
                        raise llm_scorer.DeadlineExceeded
                    probs = self.probabilities(schema, batch, model)
                except llm_scorer.DeadlineExceeded:
                    reason = f"not predicted within {self.settings.predict_timeout} s (PREDICT_TIMEOUT); ask again"
                    skipped += [{"index": i, "task": _task_id(tasks[i]), "reason": reason} for i in slots[start:]]
                    self.metrics.timeouts.inc(len(slots) - start)
                    break
                self._fill(results, schema, tasks, slots[start : start + chunk], batch, probs, strategy, ranking,
                           version, lanes)
        finally:
            llm_scorer.DEADLINE.reset(deadline)
        skipped.sort(key=lambda item: item["index"])
        return results, skipped, version

    def _fill(self, results, schema, tasks, slots, batch, probs, strategy, ranking, version, lanes) -> None:
        """Each task's prediction, with the pool ranking's score when the task has one, else its own."""
        # The LLM's probabilities were just cached by probabilities(): reading them again costs a lookup.
        llm = self.llm_probs(schema, batch)[0] if strategy in strategies.NEEDS_LLM_PROBS else None
        priority = strategies.pointwise_priority(strategy, probs, llm)
        for slot, row, own in zip(slots, probs, priority):
            task_id = _task_id(tasks[slot])
            if ranking and ranking.published == version and task_id in ranking.priorities:
                own = ranking.priorities[task_id]
            else:
                own = ls_queue.task_score(own, task_id, lanes)
            results[slot] = {
                "result": [schema.result(schema.labels[int(np.argmax(row))])],
                "score": round(float(own), 6),
                "model_version": version,
            }

    # ---------------------------------------------------------------- training

    def request_training(self, project: str, task_id: Any = None) -> str:
        """Ask for a run. With the task an annotation event names, the run re-reads only the tasks changed since
        the last run; without one (deletions, "Start training", a restart) it reads every labeled task again."""
        if not (self.settings.label_studio_url and self.settings.ls_api_key()):
            raise LoopError(
                "training needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (or LABEL_STUDIO_API_KEY_FILE) "
                "to fetch the labels"
            )
        self.metrics.training_requests.inc()
        with self._changes_lock:
            changed = self._changed.get(project, set())
            if isinstance(task_id, int) and changed is not None and project in self._labels:
                changed.add(task_id)
                self._changed[project] = changed
            else:
                self._changed[project] = None
        return self.training.request(project)

    def _fetch_labels(self, client, project: str, schema: Schema) -> tuple[list[ls_tasks.LabeledTask], dict]:
        with self._changes_lock:
            changed = self._changed.get(project)
            self._changed[project] = set()
        known = self._labels.get(project)
        gold_set = gold.project_gold(self.settings.gold_file)
        try:
            if changed is None or known is None:
                labeled, stats = self._with_retries(
                    "fetching labels", lambda: ls_tasks.fetch_labeled(client, int(project), schema, gold_set=gold_set)
                )
                known = {t.task_id: t for t in labeled}
                read = "all"
            else:
                labeled, stats = self._with_retries(
                    "fetching changed labels",
                    lambda: ls_tasks.fetch_labeled(client, int(project), schema, changed, gold_set=gold_set),
                )
                known = {i: t for i, t in known.items() if i not in changed}
                known.update((t.task_id, t) for t in labeled)
                read = len(changed)
        except Exception:
            with self._changes_lock:
                self._changed[project] = None  # whatever was missed is read in full next time
            raise
        self._labels[project] = known
        return [known[i] for i in sorted(known)], {"read": read, **vars(stats)}

    def _connect(self):
        from backend.labelstudio import client as ls_client

        return ls_client.connect(self.settings.label_studio_url, self.settings.ls_api_key()).client

    def client(self):
        """One SDK client, made on first use (it checks the URL and key) and kept: it refreshes its own token."""
        if self._client is None:
            self._client = self._with_retries("connecting to Label Studio", self._client_factory)
        return self._client

    def busy(self, project: str) -> bool:
        return self.training.busy(project) or self.rescoring.busy(project)

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
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

    def _project_schema(self, client, project: str) -> Schema:
        config = self._with_retries("reading the project", lambda: client.projects.get(id=int(project)).label_config)
        return schemas.parse(config or "")

    def train(self, project: str) -> dict:
        """One training run; the result also goes to the registry, the log and /metrics."""
        started = time.perf_counter()
        try:
            with self.store(project).training_lock():  # replicas sharing DATA_DIR take turns
                record = self._train(project, started)
        except Exception as e:
            self.metrics.training_runs.labels("failed").inc()
            log.exception("training for project %s failed; the serving model is unchanged", project)
            return {"result": "failed", "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
        self.metrics.training_runs.labels(record["result"]).inc()
        self.metrics.training_seconds.observe(record["seconds"])
        log.info("training for project %s: %s", project, {k: v for k, v in record.items() if k != "stats"})
        return record

    def _train(self, project: str, started: float) -> dict:
        self._refresh(project)  # another replica may have trained while this one waited for the lock
        client = self.client()
        schema = self._project_schema(client, project)
        labeled, stats = self._fetch_labels(client, project, schema)
        fetched = time.perf_counter()
        record: dict[str, Any] = {"labels": len(labeled), "stats": stats, "strategy": self.strategy(project),
                                  "features": self.features()}
        if not labeled:
            return {**record, "result": "skipped", "reason": "no labeled tasks", "seconds": time.perf_counter() - started}
        texts = [t.text for t in labeled]
        ids = np.array([t.task_id for t in labeled])
        y = np.array([schema.labels.index(t.label) for t in labeled])
        features = self.features()
        emb = self.vectors(schema, texts, features)
        llm, llm_version = self.llm_probs(schema, texts)
        if self.settings.consensus == "crowdlab":
            y, record["consensus"] = label_issues.crowdlab_labels(
                [t.votes for t in labeled], y, schema.labels, self.recipe(features), emb, llm)
        try:
            oof = classifier.out_of_fold(self.recipe(features), emb, llm, y, len(schema.labels))
        except classifier.TrainingError as e:
            return {**record, "result": "skipped", "reason": str(e), "seconds": time.perf_counter() - started}
        candidate_guess = oof.argmax(1)
        incumbent = self.model(project)
        if incumbent and (incumbent.labels != schema.labels or incumbent.llm_version != llm_version):
            incumbent = None  # trained for another config or LLM: the LLM is what it would be compared with
        incumbent_guess = self._incumbent_guess(incumbent, ids, y, schema, texts, llm)
        candidate_f1, incumbent_f1 = _macro_f1(y, candidate_guess), _macro_f1(y, incumbent_guess)
        llm_f1 = _macro_f1(y, llm.argmax(1))
        record["routing"] = routing.routing_record(oof, llm, y)  # thresholds at the 95% target, kept in the registry
        promote = candidate_f1 > incumbent_f1
        store = self.store(project)
        version = f"{llm_version}-r{len(store.versions()) + 1}"
        record.update(
            version=version,
            incumbent=incumbent.version if incumbent else llm_version,
            cv_macro_f1=round(candidate_f1, 4),
            incumbent_macro_f1=round(incumbent_f1, 4),
            llm_macro_f1=round(llm_f1, 4),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            result="promoted" if promote else "kept",
        )
        model = None
        if promote:
            fitted = classifier.fit(self.recipe(features), emb, llm, y, len(schema.labels))
            heldout = {int(i): (int(a), int(b)) for i, a, b in zip(ids, y, candidate_guess)}
            model = TrainedModel(version, schema.labels, llm_version, fitted, heldout, features)
        record["fit_seconds"] = round(time.perf_counter() - fetched, 3)
        record["seconds"] = round(time.perf_counter() - started, 3)
        store.add(version, model, record, promote)
        self._wrote(project)
        self._save_caches()
        if model:
            self._models[project] = model
            self.metrics.model_version.labels(version).set(1)
            self.rescoring.request(project)
        elif incumbent and not self.rescoring.busy(project) and self._unranked(project, incumbent.version):
            # The serving model's re-score never finished (killed, restarted, Label Studio down): Label Studio
            # still holds an older version's predictions, and a run that keeps the model must not leave it so.
            self.rescoring.request(project)
        return record

    def _unranked(self, project: str, version: str) -> bool:
        ranking = self._rankings.get(project)
        return ranking is None or ranking.version != version

    def _incumbent_guess(self, incumbent: TrainedModel | None, ids, y, schema, texts, llm) -> np.ndarray:
        if incumbent is None:
            return llm.argmax(1)
        guess = self.probabilities(schema, texts, incumbent).argmax(1)
        for row, (task_id, label) in enumerate(zip(ids, y)):
            seen = incumbent.heldout.get(int(task_id))
            if seen and seen[0] == label:
                guess[row] = seen[1]  # trained on it: only its out-of-fold guess is a fair one
        return guess

    # ---------------------------------------------------------------- re-scoring the pool

    def rescore(self, project: str) -> None:
        """Predict every task with the serving version, rank the pool, write the predictions, switch the version."""
        started = time.perf_counter()
        client = self.client()
        schema = self._project_schema(client, project)
        pool = self._with_retries("reading the pool", lambda: ls_tasks.fetch_pool(client, int(project), schema))
        if not pool:
            return
        ids = [task_id for task_id, _ in pool]
        texts = [text for _, text in pool]
        chunk = self.settings.rescore_chunk
        parts: list[np.ndarray] = []
        progress = self.metrics.rescore_progress.labels(project)
        model, version = self.serving(project, schema)
        for start in range(0, len(texts), chunk):
            parts.append(self.probabilities(schema, texts[start : start + chunk], model))
            done = min(start + chunk, len(texts))
            progress.set(done / len(texts) / 2)  # scoring is the first half of the work, writing the second
            log.info("re-scoring project %s: %d/%d tasks scored", project, done, len(texts))
        probs = np.vstack(parts)
        strategy = self.strategy(project)
        current = self.model(project)
        trained_on = current.heldout if current else {}
        labeled = [i for i, task_id in enumerate(ids) if task_id in trained_on]
        known = set(self._labels.get(project, {})) | set(trained_on)
        self.coverage[project] = routing.pool_coverage(probs, ids, self.versions(project),
                                                       model.version if model else None, known)
        emb = self.embedder.encode(texts) if strategy in ("diversity", "hybrid") else None
        extras = {strategy: self._judged(strategy, texts)} if strategy in strategies.LLM_JUDGED else None
        llm = self.llm_probs(schema, texts)[0] if strategy in strategies.NEEDS_LLM_PROBS else None  # cached above
        utility = strategies.rank(strategy, probs, emb, labeled_idx=labeled, extra_utilities=extras, llm_probs=llm)
        scores = ls_queue.lane_scores(strategies.priority_scores(utility), self.lanes(project))
        predictions = [
            {
                "task": task_id,
                "result": [schema.result(schema.labels[int(np.argmax(row))])],
                "score": round(float(score), 6),
            }
            for task_id, row, score in zip(ids, probs, scores)
        ]

        def written(done: int, total: int) -> None:
            progress.set(0.5 + done / total / 2)
            log.info("re-scoring project %s: %d/%d predictions written", project, done, total)

        def publish() -> tuple[str, dict[str, int]]:
            # Every attempt writes under a name Label Studio does not hold yet, so a retry never doubles a set.
            present = ls_tasks.model_versions(client, int(project))
            name = _fresh_name(version, present)
            # Noted before writing (a set cut short is still ours to delete), and as the newest even if used before.
            self.store(project).add_published(name)
            self._wrote(project)
            self._published.add((project, name))
            named = [{**p, "model_version": name} for p in predictions]
            ls_tasks.publish(client, int(project), named, name, self.settings.write_chunk, written)
            return name, present

        published, present = self._with_retries("publishing predictions", publish)
        self._rankings[project] = PoolRanking(version, published, dict(zip(ids, scores.tolist())))
        self._housekeep(client, project, published, present)
        try:
            self._with_retries("updating the queue tabs",
                               lambda: ls_queue.ensure_tabs(client, int(project), self.lanes(project)))
        except ls_tasks.LabelStudioUnavailable as e:
            log.warning("project %s: the queue tabs were not updated: %s", project, e)
        self._save_caches()
        self.metrics.rescored_tasks.inc(len(ids))
        progress.set(1.0)
        log.info("re-scored project %s: %d tasks, %s order, %d lane(s), published as %s, %.1f s", project, len(ids),
                 strategy, self.lanes(project), published, time.perf_counter() - started)

    def _housekeep(self, client, project: str, serving: str, present: dict[str, int]) -> None:
        """Delete the older prediction sets this backend wrote, keeping KEEP_PREDICTION_VERSIONS with the serving
        one. Only names in the project's published list are touched: imported sets and other backends' stay."""
        older = [v for v in self.store(project).published() if v != serving and v in present]
        keep = self.settings.keep_prediction_versions - 1
        for old in older[: max(len(older) - keep, 0)]:
            try:
                ls_tasks.delete_model_version(client, int(project), old)
            except ls_tasks.LabelStudioUnavailable as e:
                log.warning("project %s: predictions of %s not deleted (next time): %s", project, old, e)
                continue
            log.info("project %s: deleted the %d predictions of %s", project, present[old], old)

    def _judged(self, strategy: str, texts: list[str]) -> np.ndarray:
        """The LLM's judgement of every text (backend/ranking/judge.py), cached per text like the label probabilities."""
        variant = strategy.removeprefix("llm_")
        predictor = self._predictor()
        scorer = predictor.scorer
        prompt = judge.judge_prompt(scorer.tokenizer, variant)
        digest = hashlib.sha256(f"{predictor.source.identity}\x1f{prompt.sha256}".encode()).hexdigest()
        key = f"judge-{variant}-{digest[:12]}"
        if key not in self._llm_caches:
            self._llm_caches[key] = VectorCache(self.settings.data_dir / "cache" / f"{key}.npz")
        return judge.utilities(scorer, texts, variant, self._llm_caches[key])

    def _save_caches(self) -> None:
        """Kept on disk so a restarted backend does not score every labeled text again before its first retrain."""
        self.embedder.save()
        for cache in list(self._llm_caches.values()):
            cache.save()

    # ---------------------------------------------------------------- listing

    def versions(self, project: str) -> list[dict]:
        return self.store(project).versions()


def _fresh_name(version: str, present: dict[str, int]) -> str:
    """`version`, or "<version>+2", "+3"... : the first name no prediction in the project carries yet."""
    name, n = version, 1
    while name in present:
        n += 1
        name = f"{version}+{n}"
    return name


def _task_id(task: Any) -> Any:
    return task.get("id") if isinstance(task, dict) else None


def check_strategy(name: Any) -> str:
    if not isinstance(name, str) or name not in strategies.SERVED:
        raise LoopError(f"unknown ranking strategy {name!r}; use one of {sorted(strategies.SERVED)}")
    return name
