"""Re-scoring the pool after a promotion (or a change of strategy or lanes), in the background, in chunks.

Every task gets a prediction from the serving version with its priority in the whole pool (and its lane,
backend/labelstudio/queue.py), then the project's model_version is switched, so Label Studio serves tasks in the
strategy's order, and the older prediction sets this backend wrote are deleted (KEEP_PREDICTION_VERSIONS). A set is
written under a version name Label Studio does not hold yet: the model's version, or "<version>+2", "+3"... when the
same model's pool is ranked again (Label Studio would keep both sets under one name, and one name cannot be deleted
without the other).

Each phase of a run is timed in `backend_rescore_phase_seconds{phase}` (RESCORE_PHASES, backend/metrics.py).
"""

from __future__ import annotations

import contextvars
import logging
import time
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from backend.labelstudio import queue as ls_queue
from backend.labelstudio import tabs as ls_tabs
from backend.labelstudio import tasks as ls_tasks
from backend.labelstudio.schema import Config
from backend.llm.predictor import PoolCalibration
from backend.loop import routing, training
from backend.loop.answers import ranking_inputs, regions
from backend.loop.features import MINILM
from backend.loop.gateway import AnswersSource, Gateway
from backend.loop.projects import ModelSet, PoolRanking, Projects
from backend.metrics import Metrics
from backend.ranking import questions as question_ranking
from backend.ranking import strategies
from backend.settings import Settings

if TYPE_CHECKING:
    from backend.loop.features import TextFeatures

log = logging.getLogger(__name__)

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("rescore_phase", default=None)


def current_phase() -> str | None:
    """The re-score phase running in this thread, if any: what a request hook can count Label Studio's calls by."""
    return _current.get()


@contextmanager
def phase(metrics: Metrics, name: str) -> Iterator[None]:
    """Time the block as the re-score phase `name`, failed or not."""
    token = _current.set(name)
    started = time.perf_counter()
    try:
        yield
    finally:
        metrics.rescore_phase_seconds.labels(name).observe(time.perf_counter() - started)
        _current.reset(token)


def run(gate: Gateway, project: str) -> None:
    """Predict every task with the serving version, rank the pool, write the predictions, switch the version."""
    projects, text = gate.projects, gate.text
    started = time.perf_counter()
    timed = partial(phase, gate.metrics)
    client = gate.client()
    with timed("read config"):
        config = gate.project_config(client, project)
    schema = config.primary
    with timed("read pool"):
        pool = gate.with_retries("reading the pool", lambda: ls_tasks.fetch_pool(client, int(project), schema))
    projects.tasks[project] = pool  # a training run below 50 labels draws its unlabeled sample from it
    if not pool:
        return
    ids = [task_id for task_id, _ in pool]
    texts = [t for _, t in pool]
    progress = gate.metrics.rescore_progress.labels(project)
    with timed("score"):
        gate.ensure_pool(project, config, texts)  # at the first re-score, which /setup asks for: the version moves
        pool = projects.pool(project)
        model, version = gate.serving(project, config)
        steps: list[tuple[AnswersSource, str]] = [(gate.answers, version)]
        first = text.first_version(config, pool)
        if model is None and first != version:
            # A cascade (backend/llm/cascade.py): its first model's answers are published for every task as soon as
            # they exist, then the served ones; the later set replaces the earlier (_housekeep).
            steps.insert(0, (lambda c, t, m, p=None: text.first_answers(c, t, p)[0], first))
        answers = _score(
            gate,
            project,
            config=config,
            texts=texts,
            answering=steps[0][0],
            model=model,
            pool=pool,
            span=(0, 1 / len(steps)),
        )
        if model is None and _teach(gate, client, project, config):
            # Taught from the pass that just answered (its hidden states are cached): the pool is published once, with
            # the taught model's answers.
            model, version = gate.serving(project, config)
            steps = [(gate.answers, version)]
            answers = gate.answers(config, texts, model, pool)
    for n, (answering, named) in enumerate(steps):
        span = (n / len(steps), (n + 1) / len(steps))  # of the progress gauge
        if n:
            with timed("score"):
                answers = _score(
                    gate, project, config=config, texts=texts, answering=answering, model=model, pool=pool, span=span
                )
        published = _publish(
            gate,
            client,
            project,
            config=config,
            ids=ids,
            texts=texts,
            answers=answers,
            version=named,
            model=model,
            pool=pool,
            span=span,
        )
    text.save()
    gate.metrics.rescored_tasks.inc(len(ids))
    progress.set(1.0)
    log.info(
        "re-scored project %s: %d tasks, %s order, %d lane(s), published as %s, %.1f s",
        project,
        len(ids),
        projects.strategy(project),
        projects.lanes(project),
        published,
        time.perf_counter() - started,
    )


def _teach(gate: Gateway, client: Any, project: str, config: Config) -> bool:
    """Before the first training run, a model taught by the LLM's own answers (training.teach); whether one was."""
    if not training.teachable(gate, project, config):
        return False
    with gate.projects.store(project).training_lock():  # replicas sharing DATA_DIR take turns
        if not training.teachable(gate, project, config):
            return False
        record = training.teach(gate, client, project, config)
    if record["result"] != "promoted":
        log.info("project %s: no model taught before the first label: %s", project, record.get("reason"))
        return False
    taught = record["self_training"]
    log.info(
        "project %s: before the first label, %s taught by the LLM's %d surest answers of %d tasks (%s, %.1f s)",
        project,
        record["version"],
        taught["pseudo_labels"],
        taught["unlabeled"],
        record["recipe"],
        record["seconds"],
    )
    return True


def _score(
    gate: Gateway,
    project: str,
    *,
    config: Config,
    texts: list[str],
    answering: AnswersSource,
    model: ModelSet | None,
    pool: PoolCalibration | None,
    span: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Every question's answers for the pool, chunk by chunk; the first half of `span` on the progress gauge."""
    progress = gate.metrics.rescore_progress.labels(project)
    chunk = gate.settings.rescore_chunk
    parts: list[dict[str, np.ndarray]] = []
    features = gate.text.features()
    for start in range(0, len(texts), chunk):
        batch = texts[start : start + chunk]
        if model is None and features != MINILM:
            # The pass that answers holds the hidden states as well (the same forward pass): kept, so a first
            # training run finds its unlabeled sample's states (backend/learning/self_training.py) in the cache.
            gate.text.vectors(config, batch, features, pool)
        parts.append(answering(config, batch, model, pool))
        done = min(start + chunk, len(texts))
        progress.set(span[0] + (span[1] - span[0]) * done / len(texts) / 2)
        log.info("re-scoring project %s: %d/%d tasks scored", project, done, len(texts))
    return {q: np.vstack([part[q] for part in parts]) for q in config.names}


def _publish(
    gate: Gateway,
    client: Any,
    project: str,
    *,
    config: Config,
    ids: list[Any],
    texts: list[str],
    answers: dict[str, np.ndarray],
    version: str,
    model: ModelSet | None,
    pool: PoolCalibration | None,
    span: tuple[float, float],
) -> str:
    """Rank the pool by the project's strategy, write its predictions as a new set of `version`, and switch to it;
    the second half of `span` on the progress gauge. The name the set was written under."""
    projects, text, settings = gate.projects, gate.text, gate.settings
    timed = partial(phase, gate.metrics)
    progress = gate.metrics.rescore_progress.labels(project)
    schema = config.primary
    probs = answers[schema.from_name]
    strategy = projects.strategy(project)
    current = projects.model(project)
    trained_on = current.trained_on if current else set()
    labeled = [i for i, task_id in enumerate(ids) if task_id in trained_on]
    known = set(projects.labels.get(project, {})) | set(trained_on)
    with timed("rank"):
        if not schema.multiple:  # finishing (routing.py) is defined for single-choice questions
            # The first question's threshold was measured by the run that trained its model, not by the run that
            # last promoted some other question's.
            first = model.saved_for(config, schema) if model else None
            projects.coverage[project] = routing.pool_coverage(
                probs, ids, projects.versions(project), first.version if first else None, known
            )
        needs = strategy_inputs(strategies.get(strategy), text, config, texts, pool)
        llm = needs.pop("llm_probs")
        inputs = ranking_inputs(config, answers, llm, learned_labels(text, config, model, pool))
        weights = question_weights(settings, projects, project, config.names)
        utility = question_ranking.rank(strategy, inputs, weights, labeled_idx=labeled, **needs)
        scores = ls_queue.lane_scores(strategies.priority_scores(utility), projects.lanes(project))
    predictions = [
        {
            "task": task_id,
            "result": regions(config, {q: answers[q][i] for q in config.names}),
            "score": round(float(score), 6),
        }
        for i, (task_id, score) in enumerate(zip(ids, scores))
    ]

    def written(done: int, total: int) -> None:
        progress.set(span[0] + (span[1] - span[0]) * (1 + done / total) / 2)
        log.info("re-scoring project %s: %d/%d predictions written", project, done, total)

    def publish() -> tuple[str, dict[str, int]]:
        # Every attempt writes under a name Label Studio does not hold yet, so a retry never doubles a set.
        with timed("list versions"):
            present = ls_tasks.model_versions(client, int(project))
        name = fresh_name(version, present)
        # Noted before writing (a set cut short is still ours to delete), and as the newest even if used before.
        projects.note_published(project, name, again=True)
        named = [{**p, "model_version": name} for p in predictions]
        ls_tasks.publish(client, int(project), named, name, settings.write_chunk, written, step=timed)
        return name, present

    published, present = gate.with_retries("publishing predictions", publish)
    projects.rankings[project] = PoolRanking(version, published, dict(zip(ids, scores.tolist())))
    _housekeep(gate, client, project, published, present)
    try:
        with timed("tabs"):
            gate.with_retries(
                "updating the queue tabs",
                lambda: ls_tabs.ensure_queue_tabs(client, int(project), projects.lanes(project)),
            )
    except ls_tasks.LabelStudioUnavailable as e:
        log.warning("project %s: the queue tabs were not updated: %s", project, e)
    return published


def question_weights(settings: Settings, projects: Projects, project: str | None, names: tuple[str, ...]) -> dict:
    """How much each question counts in the ranking (RANK_QUESTIONS; with "learning", from the newest run's
    scores)."""
    if question_ranking.is_learning(settings.rank_questions) and project and len(names) > 1:
        return question_ranking.learning_weights(projects.question_scores(project, names))
    return settings.question_weights(names)


def learned_labels(
    text: "TextFeatures", config: Config, model: ModelSet | None, pool: PoolCalibration | None
) -> dict[str, np.ndarray]:
    """The labels each question's serving model learned (answers.ranking_inputs reads them); {} when the LLM serves."""
    return model.learned(config, text.llm_version(config, pool)) if model else {}


def strategy_inputs(
    strategy: strategies.Strategy, text: "TextFeatures", config: Config, texts: list[str], pool: PoolCalibration | None
) -> dict[str, Any]:
    """`rank`'s keyword arguments for what the strategy needs beside the probabilities; only those are computed
    (embeddings and the LLM's judgements cost a pass over the pool)."""
    return {
        "embeddings": text.embedder.encode(texts) if strategy.needs_embeddings else None,
        "extra_utilities": {strategy.name: text.judged(strategy.name, texts)} if strategy.llm_judged else None,
        # every question's, cached by the pass that answered the pool
        "llm_probs": text.llm_answers(config, texts, pool)[0] if strategy.needs_llm_probs else None,
    }


def _housekeep(gate: Gateway, client, project: str, serving: str, present: dict[str, int]) -> None:
    """Delete the older prediction sets this backend wrote, keeping KEEP_PREDICTION_VERSIONS with the serving one.
    Only names in the project's published list are touched: imported sets and other backends' stay."""
    older = [v for v in gate.projects.store(project).published() if v != serving and v in present]
    keep = gate.settings.keep_prediction_versions - 1
    with phase(gate.metrics, "delete"):
        for old in older[: max(len(older) - keep, 0)]:
            try:
                ls_tasks.delete_model_version(client, int(project), old)
            except ls_tasks.LabelStudioUnavailable as e:
                log.warning("project %s: predictions of %s not deleted (next time): %s", project, old, e)
                continue
            log.info("project %s: deleted the %d predictions of %s", project, present[old], old)


def fresh_name(version: str, present: dict[str, int]) -> str:
    """`version`, or "<version>+2", "+3"... : the first name no prediction in the project carries yet."""
    name, n = version, 1
    while name in present:
        n += 1
        name = f"{version}+{n}"
    return name
