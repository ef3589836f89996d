"""A training run: fetch the project's labels from Label Studio, let them choose a recipe (recipes.choose: the
candidates' cross-validated macro-F1), fit it, and promote it only when its cross-validated macro-F1 beats the
serving model's on the same labels. The chosen recipe's score is the best of a few, so a little optimistic; the
candidates are four and the gate compares with a model that was itself chosen this way.

The serving model is judged on labels it never saw: the LLM on all of them; a promoted model by its own out-of-fold
predictions, kept from its training, for the tasks it was trained on (with the label they had then) and by its
predictions for every other task.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar, cast

import numpy as np
from sklearn.metrics import f1_score

from backend.labelstudio import review
from backend.labelstudio import tasks as ls_tasks
from backend.labelstudio.client import LabelStudioUnavailable
from backend.labelstudio.schema import Config, Schema
from backend.learning import classifier, recipes, self_training
from backend.loop import routing
from backend.loop.features import MINILM
from backend.loop.gateway import Gateway
from backend.loop.projects import (
    ModelSet,
    Projects,
    QuestionRecord,
    SelfTrainingRecord,
    TrainedModel,
    TrainingRecord,
)
from backend.quality import drift, gold, label_issues

T = TypeVar("T")


def each_question(work: Callable[[Schema], T], questions: Sequence[Schema]) -> list[T]:
    """work(question) for every question, in as many threads as there are cores: the fits spend most of their time
    in NumPy, which lets go of the GIL, so two questions on two cores took 1.00 s at 1,000 labels where one after
    the other took 1.43 s (docs/questions.md)."""
    workers = max(1, min(len(questions), os.cpu_count() or 1))
    if workers == 1:
        return [work(q) for q in questions]
    with classifier.one_thread(), ThreadPoolExecutor(workers, thread_name_prefix="question") as pool:
        return list(pool.map(work, questions))


def macro_f1(y: np.ndarray, guess: np.ndarray) -> float:
    """Over the labels the annotators used: the classes present (single choice), or the labels chosen at least once
    (multi-label: y and guess are 0/1 matrices)."""
    present = np.flatnonzero(y.sum(axis=0)) if y.ndim == 2 else np.unique(y)
    return float(f1_score(y, guess, labels=present, average="macro", zero_division=0))


def _code(row: Any) -> int:
    # A multi-label answer kept in a model's held-out record as one int: bit j set when label j applies.
    return int(np.dot(row, 1 << np.arange(len(row)))) if np.ndim(row) else int(row)


def _decode(code: int, like: np.ndarray) -> Any:
    return (code >> np.arange(like.shape[1])) & 1 if like.ndim == 2 else code


def note_change(projects: Projects, project: str, task_id: Any) -> None:
    """With the task an annotation event names, the next run re-reads only the tasks changed since the last run;
    without one (deletions, "Start training", a restart) it reads every labeled task again."""
    with projects.changes_lock:
        changed = projects.changed.get(project, set())
        if isinstance(task_id, int) and changed is not None and project in projects.labels:
            changed.add(task_id)
            projects.changed[project] = changed
        else:
            projects.changed[project] = None


def fetch_labels(gate: Gateway, client, project: str, config: Config) -> tuple[list[ls_tasks.LabeledTask], dict]:
    """The project's labels (only the tasks changed since the last run are read again), the stats of the read, and
    in `projects.gold_votes` every annotator's answers on the gold tasks."""
    projects = gate.projects
    with projects.changes_lock:
        changed = projects.changed.get(project)
        projects.changed[project] = set()
    known = projects.labels.get(project)
    gold_set = gold.project_gold(gate.settings.gold_file)
    votes: list[ls_tasks.GoldVote] = []
    on_gold: dict[int, list[ls_tasks.GoldVote]]

    def fetch(task_ids: set[int] | None = None) -> tuple[list[ls_tasks.LabeledTask], ls_tasks.FetchStats]:
        votes.clear()  # a retry reads them again
        return ls_tasks.fetch_labeled(client, int(project), config, task_ids, gold_set=gold_set, gold_votes=votes)

    read: int | str
    try:
        if changed is None or known is None:
            labeled, stats = gate.with_retries("fetching labels", fetch)
            known, on_gold = {t.task_id: t for t in labeled}, {}
            read = "all"
        else:
            labeled, stats = gate.with_retries("fetching changed labels", lambda: fetch(changed))
            known = {i: t for i, t in known.items() if i not in changed}
            known.update((t.task_id, t) for t in labeled)
            on_gold = {i: v for i, v in projects.gold_votes.get(project, {}).items() if i not in changed}
            read = len(changed)
    except Exception:
        with projects.changes_lock:
            projects.changed[project] = None  # whatever was missed is read in full next time
        raise
    for vote in votes:
        on_gold.setdefault(vote.task_id, []).append(vote)
    projects.labels[project] = known
    projects.gold_votes[project] = on_gold
    return [known[i] for i in sorted(known)], {"read": read, **vars(stats)}


@dataclass(frozen=True)
class _Stamp:
    """What every model a run promotes carries: the run's version, the LLM version and the vectors it read."""

    version: str
    llm_version: str
    features: str


# What a run's record says of its first question at the top level, as it did when only that question learned.
_FIRST_QUESTION_KEYS = (
    "recipe",
    "recipe_scores",
    "calibration_loglik",
    "consensus",
    "routing",
    "cv_macro_f1",
    "incumbent_macro_f1",
    "llm_macro_f1",
    "self_training",
)


def choose(question: Schema, candidates: Sequence[recipes.Recipe], data: recipes.Labeled) -> recipes.Choice:
    """The recipe a question's labels choose, by cross-validated macro-F1 (recipes.choose)."""
    # Above 500 labels three folds rank the candidates as well as five, and five would put a run at 1,000 labels past
    # a second on two cores.
    return recipes.choose(
        candidates,
        data,
        lambda truth, probs: macro_f1(truth, question.decisions(probs)),
        folds=3 if len(data.y) > 500 else 5,
    )


def run(gate: Gateway, project: str, started: float) -> tuple[TrainingRecord, bool]:
    """One run, under the project's training lock: every question with enough labels is fitted and promoted on its
    own rule; its record (also written to the registry), and whether the pool is due a re-score."""
    projects, text = gate.projects, gate.text
    projects.refresh(project)  # another replica may have trained while this one waited for the lock
    client = gate.client()
    config = gate.project_config(client, project)
    labeled, stats = fetch_labels(gate, client, project, config)
    fetched = time.perf_counter()
    features = text.features()
    record: TrainingRecord = {
        "labels": len(labeled),
        "stats": stats,
        "strategy": projects.strategy(project),
        "features": features,
    }
    on_gold = [vote for votes in projects.gold_votes.get(project, {}).values() for vote in votes]
    if on_gold and not config.primary.multiple:  # the gold set answers the first question
        record["gold"] = drift.annotators_on_gold(on_gold)
    try:
        record["review_tab"] = review.waiting(client, int(project))
    except LabelStudioUnavailable:  # only the page's link is lost; the run goes on
        record["review_tab"] = None
    if not labeled:
        return {
            **record,
            "result": "skipped",
            "reason": "no labeled tasks",
            "seconds": time.perf_counter() - started,
        }, False
    texts = [t.text for t in labeled]
    pool = projects.pool(project)
    vectors = text.vector_sets(config, texts, features, pool)
    llm, llm_version = text.llm_answers(config, texts, pool)
    read = text.first_answers(config, texts, pool)[0]  # what trained models read: a cascade's first model's own
    current = projects.model(project)
    serving = current.fitting(config, llm_version) if current else {}
    # What serves each question now, on every labeled text: one pass for all questions.
    serving_probs = gate.answers(config, texts, current, pool) if serving else llm
    store = projects.store(project)
    version = f"{llm_version}-r{len(store.versions()) + 1}"
    shifts = text.shifts(config, pool)
    unlabeled = _unlabeled(gate, client, project, config, labeled, features, gate.settings.self_train_below)

    def one(q: Schema) -> tuple[QuestionRecord, TrainedModel | None]:
        return _question(
            gate,
            q,
            q is config.primary,
            labeled,
            vectors=vectors,
            llm=read[q.from_name],
            serving_probs=serving_probs[q.from_name],
            incumbent=serving.get(q.from_name),
            stamp=_Stamp(version, llm_version, features),
            shifts=shifts,
            served=llm[q.from_name],
            unlabeled=unlabeled.get(q.from_name),
        )

    outcomes = dict(zip(config.names, each_question(one, config.questions)))
    record["questions"] = {name: sub for name, (sub, _) in outcomes.items()}
    first = record["questions"][config.primary.from_name]
    on_top = cast(dict, first)  # a copy of named keys: mypy checks TypedDict keys only when written out
    record.update(cast(TrainingRecord, {key: on_top[key] for key in _FIRST_QUESTION_KEYS if key in on_top}))
    results = {sub["result"] for sub in record["questions"].values()}
    promoted = {name: model for name, (_, model) in outcomes.items() if model is not None}
    if results == {"skipped"}:
        record.update({"result": "skipped", "reason": first["reason"], "seconds": time.perf_counter() - started})
        return record, False
    record.update(
        {
            "version": version,
            "incumbent": current.version if serving and current else llm_version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "result": "promoted" if promoted else "kept",
        }
    )
    new_set = ModelSet(version, {**serving, **promoted}) if promoted else None
    record["fit_seconds"] = round(time.perf_counter() - fetched, 3)
    record["seconds"] = round(time.perf_counter() - started, 3)
    _save(gate, project, version, record, new_set)
    if new_set:
        return record, True
    # The serving model's re-score never finished (killed, restarted, Label Studio down): Label Studio still holds
    # an older version's predictions, and a run that keeps the model must not leave it so.
    return record, bool(current and not gate.rescore_running(project) and _unranked(projects, project, current.version))


def teachable(gate: Gateway, project: str, config: Config) -> bool:
    """Whether a re-score teaches the project a first model before it answers the pool (teach): asked for
    (SELF_TEACH: off by default, it lost on one packaged corpus of three, docs/data.md), hidden states to read, no
    cascade (measured for one LLM alone: a taught model would replace the cascade's second model everywhere), and no
    training run recorded yet."""
    pool = gate.projects.pool(project)
    return bool(  # the cheap checks first: this is asked at every re-score
        gate.settings.self_teach
        and gate.projects.model(project) is None
        and gate.text.features() != MINILM
        and gate.text.first_version(config, pool) == gate.text.llm_version(config, pool)
        and not gate.projects.store(project).versions()
    )


def teach(gate: Gateway, client: Any, project: str, config: Config) -> TrainingRecord:
    """Before any training run: each single-choice question's TEACH_RECIPE, taught by the LLM's own surest answers on
    the project's unlabeled sample (self_training.teach), is promoted with no gate (there is no label to judge it on:
    a team turns it on where its pilot's `labelloop compare-strategies` shows the gain). The record, also written to
    the registry; the first labels judge the model as any incumbent."""
    started = time.perf_counter()
    features = gate.text.features()
    recipe = recipes.RECIPES[self_training.TEACH_RECIPE]  # it reads hidden states (teachable)
    unlabeled = _unlabeled(gate, client, project, config, [], features, below=1)
    pool = gate.projects.pool(project)
    llm_version = gate.text.llm_version(config, pool)
    store = gate.projects.store(project)
    version = f"{llm_version}-r{len(store.versions()) + 1}"
    questions: dict[str, QuestionRecord] = {}
    taught: dict[str, TrainedModel] = {}
    for q in config.questions:
        if q.from_name not in unlabeled:
            questions[q.from_name] = {
                "labels": 0,
                "result": "skipped",
                "reason": "a multi-label question is not taught",
            }
            continue
        try:
            trained = self_training.teach(recipe, unlabeled[q.from_name])
        except classifier.TrainingError as e:
            questions[q.from_name] = {"labels": 0, "result": "skipped", "reason": str(e)}
            continue
        questions[q.from_name] = {
            "labels": 0,
            "result": "promoted",
            "recipe": recipe.name,
            "incumbent": llm_version,
            "self_training": _joined(trained, q.labels),
        }
        taught[q.from_name] = TrainedModel(
            version,
            q.labels,
            llm_version,
            trained.model,
            features=gate.text.features_of(recipe, features),
            question=q.from_name,
        )
    first = cast(dict, questions[config.primary.from_name])
    record: TrainingRecord = {
        "labels": 0,
        "strategy": gate.projects.strategy(project),
        "features": features,
        **cast(TrainingRecord, {key: first[key] for key in _FIRST_QUESTION_KEYS if key in first}),
        "questions": questions,
    }
    if not taught:
        return {
            **record,
            "result": "skipped",
            "reason": first.get("reason", ""),
            "seconds": time.perf_counter() - started,
        }
    record.update(
        {
            "version": version,
            "incumbent": llm_version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "result": "promoted",
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    _save(gate, project, version, record, ModelSet(version, taught))
    return record


def _joined(trained: self_training.SelfTrained, labels: Sequence[str]) -> SelfTrainingRecord:
    """What self-training or teaching joined, as the record says it (by label name)."""
    per_label = {labels[i]: n for i, n in trained.per_label.items()}
    return {"unlabeled": trained.unlabeled, "pseudo_labels": trained.pseudo_labels, "per_label": per_label}


def _save(gate: Gateway, project: str, version: str, record: TrainingRecord, new_set: ModelSet | None) -> None:
    """The run's record in the registry, and its models where it promoted any (then they serve)."""
    gate.projects.store(project).add(version, new_set.as_data() if new_set else None, record, new_set is not None)
    gate.projects.wrote(project)
    gate.text.save()
    if new_set:
        gate.projects.promoted(project, new_set)
        gate.metrics.model_version.labels(version).set(1)


def _question(
    gate: Gateway,
    question: Schema,
    first: bool,
    labeled: list[ls_tasks.LabeledTask],
    *,
    vectors: dict[str, np.ndarray],
    llm: np.ndarray,
    serving_probs: np.ndarray,
    incumbent: TrainedModel | None,
    stamp: _Stamp,
    shifts: dict[str, tuple[float, ...]],
    served: np.ndarray,
    unlabeled: self_training.Unlabeled | None = None,
) -> tuple[QuestionRecord, TrainedModel | None]:
    """One question's part of a run: its record, and its new model (stamped with the run's `stamp`) when it beats what serves it
    now, judged on the same labels; None when it does not, or when it has too few labels to fit. `llm`: the LLM's
    answers trained models read (TextFeatures.first_answers); `served`: the LLM's served answers (a cascade's);
    `unlabeled`: a sample of the project's unlabeled texts, for a question self-trained below 50 labels."""
    rows = np.array([i for i, t in enumerate(labeled) if question.from_name in t.answers], dtype=int)
    record: QuestionRecord = {"labels": len(rows)}
    if not len(rows):
        return {**record, "result": "skipped", "reason": "no labels for this question"}, None
    ids = np.array([labeled[i].task_id for i in rows])
    y = question.targets(labeled[i].answers[question.from_name] for i in rows)
    llm, served = llm[rows], served[rows]
    own = {name: v[rows] for name, v in vectors.items()}
    features = stamp.features
    if gate.settings.consensus == "crowdlab" and not question.multiple and first:  # the votes are the first's
        emb = own.get(recipes.STATES, own[recipes.MINILM])  # what the fixed recipe reads (crowdlab)
        y, record["consensus"] = label_issues.crowdlab_labels(
            [labeled[i].votes for i in rows], y, question.labels, gate.text.learner(features), emb, llm
        )
    # The LLM under the label-free calibration the labels find likeliest competes with the trained recipes (listed
    # first: a tie keeps it). Where no trained model serves yet it is the incumbent the gate compares with, so a
    # calibration other than the served one is promoted even when nothing trained beats it (docs/data.md).
    likely = recipes.likeliest(shifts, llm, y)
    if likely is not None:
        loglik = recipes.log_likelihoods(shifts, llm, y)
        record["calibration_loglik"] = {name: round(value, 4) for name, value in loglik.items()}
    candidates = ((likely,) if likely else ()) + gate.text.candidates(features)
    switch = incumbent is None and likely is not None and likely.calibration != next(iter(shifts))
    data = recipes.Labeled(own, llm, y, len(question.labels))
    try:
        choice = choose(question, candidates, data)
    except classifier.TrainingError as e:
        return {**record, "result": "skipped", "reason": str(e)}, None
    oof = choice.oof
    record.update({"recipe": choice.recipe.name, "recipe_scores": choice.scores})
    # The labels the model doubts, judged as `labelloop label-issues` judges them: a count for the project's page.
    doubted, _ = (label_issues.flag_multilabel if question.multiple else label_issues.flag)(
        y, label_issues.judging(oof, llm)
    )
    record["label_issues"] = int(doubted.sum())
    candidate_guess = question.decisions(oof)
    incumbent_guess = _incumbent_guess(question, incumbent, ids, y, serving_probs[rows])
    candidate_f1, incumbent_f1 = macro_f1(y, candidate_guess), macro_f1(y, incumbent_guess)
    if not question.multiple:  # finishing (routing.py) is defined for single-choice questions
        record["routing"] = routing.routing_record(oof, served, y)  # thresholds at the 95% target, kept in the registry
    promote = candidate_f1 > incumbent_f1 or switch
    record.update(
        {
            "incumbent": incumbent.version if incumbent else stamp.llm_version,
            "cv_macro_f1": round(candidate_f1, 4),
            "incumbent_macro_f1": round(incumbent_f1, 4),
            "llm_macro_f1": round(macro_f1(y, question.decisions(served)), 4),
            "result": "promoted" if promote else "kept",
        }
    )
    if not promote:
        return record, None
    model, trained = self_training.fit(choice.recipe, data, unlabeled, gate.settings.self_train_below)
    if trained:
        record["self_training"] = _joined(trained, question.labels)
    return record, TrainedModel(
        stamp.version,
        question.labels,
        stamp.llm_version,
        model,
        heldout={int(i): (_code(a), _code(b)) for i, a, b in zip(ids, y, candidate_guess)},
        features=gate.text.features_of(choice.recipe, features),
        question=question.from_name,
        score=round(candidate_f1, 4),
    )


def _unlabeled(
    gate: Gateway,
    client: Any,
    project: str,
    config: Config,
    labeled: list[ls_tasks.LabeledTask],
    features: str,
    below: int,
) -> dict[str, self_training.Unlabeled]:
    """For each single-choice question with fewer than `below` labels: a fixed sample of the project's tasks that
    nobody has labeled, as its recipes read them; {} when no question is self-trained (no pool read)."""
    few = [q for q in config.questions if not q.multiple and sum(q.from_name in t.answers for t in labeled) < below]
    if not few:
        return {}
    # The pool as the last re-score read it (listing 10,000 tasks costs Label Studio 8-10 s); read here only when this
    # process has not re-scored the project. Tasks imported since join the sample at the next re-score.
    pool = gate.projects.tasks.get(project)
    if pool is None:
        pool = gate.with_retries("reading the pool", lambda: ls_tasks.fetch_pool(client, int(project), config.primary))
        gate.projects.tasks[project] = pool
    seen = {t.task_id for t in labeled}
    # Drawn from the whole pool, then the labeled left out: the sample only shrinks as labels come, so its vectors
    # are computed once.
    drawn = [pool[i] for i in self_training.sample(len(pool))]
    texts = [text for task_id, text in drawn if task_id not in seen]
    if not texts:
        return {}
    calibration = gate.projects.pool(project)
    # The re-score that ranked the pool kept their hidden states (rescoring._score): a lookup.
    vectors = gate.text.vector_sets(config, texts, features, calibration)
    read = gate.text.first_answers(config, texts, calibration)[0]
    return {q.from_name: self_training.Unlabeled(vectors, read[q.from_name]) for q in few}


def _unranked(projects: Projects, project: str, version: str) -> bool:
    ranking = projects.rankings.get(project)
    return ranking is None or ranking.version != version


def _incumbent_guess(
    question: Schema, incumbent: TrainedModel | None, ids: np.ndarray, y: np.ndarray, probs: np.ndarray
) -> np.ndarray:
    """What serves the question now answers (`probs`), with its own out-of-fold guess where it was trained on the
    task's present label: only that one is a fair guess."""
    guess = question.decisions(probs)
    if incumbent is None:
        return guess
    for row, (task_id, label) in enumerate(zip(ids, y)):
        seen = incumbent.heldout.get(int(task_id))
        if seen and seen[0] == _code(label):
            guess[row] = _decode(seen[1], y)
    return guess
