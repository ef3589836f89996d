"""Finishing a project's dataset: people's labels where they gave one, the model's where it is sure enough to meet
an accuracy target with a stated confidence, and the list of tasks that still need a person (labelloop finish).

The model is the one the backend would train now (backend/loop/project_loop.py): a blend of the LLM's hidden state
and its calibrated probabilities (backend/learning/classifier.py), fitted on the project's human labels (gold and
synthetic tasks left out, as training leaves them out, and the model's own earlier labels too:
backend/labelstudio/model_labels.py). With too few labels for a fit, the LLM alone is the model.

The promise is tested on an audit, in two runs:
1. Plan. The model's out-of-fold answers on the labels so far choose a region (the open tasks at or above a
   confidence floor) and an audit size (routing.plan_audit). That many tasks are drawn at random from the region,
   and --apply keeps the plan in Label Studio as the "Finish audit" tab (backend/labelstudio/audit.py); people
   label them like any task.
2. Test. Once every audit task has a label, the model, fitted again on exactly the labels of the plan (never on
   the audit's), answers the audit; the thresholds are tested in a fixed sequence, from the support the plan
   expected to pass down, and the last to pass before the first failure is chosen (routing.audit_threshold). The
   model labels the region's open tasks at or above it. With bound "ppi" each threshold's bound is
   prediction-powered instead (routing.ppi_audit_threshold: the region's confidences corrected by the audit's
   answers): on Rotten Tomatoes it left people 0.5-8.5 points less with the promise kept in every simulated run
   (docs/learning.md), but it is asymptotic, not exact, so it is the team's choice, not the default.
Why this holds whatever order people labeled in: the audit is a uniform sample of the region, drawn after the
model was fixed, and the model never saw it; so each threshold's Clopper-Pearson test is exact for the region, and
the fixed sequence errs only if its first false claim passes, one test's error (at most 1 - level). The labels the
ranking chose plan the audit and nothing else: a skewed plan costs labels, never the promise. Tasks added or
labeled since the plan are left to people or counted as theirs; --new-audit plans again from every label.

`apply` writes the model's labels into Label Studio as annotations marked as the model's (model_labels.py),
only on tasks nobody has annotated, in bulk (write_labels), and keeps Label Studio matching the dataset when run
again: nothing is written twice, a model label a person has since annotated beside (or that fell below a new
threshold) is taken back, a changed one is replaced. `undo` removes every model annotation no person has saved since, and the audit's tab.

Several questions. Each question of the config is routed on its own: its model (the backend's learner fitted on that
question's answers, a multi-label one as one regression per label, as training fits it), its confidence per task,
its region, audit sample, fixed-sequence test and threshold. A multi-label question's answer is the set: its
confidence is the least sure of its labels' yes/no decisions, min over labels of max(p, 1 - p), so the model answers
it only when every label's decision clears the bar, and an answer is right only when it is the people's set exactly.
One audit serves every question: the open tasks are put in one random order (seeded by the project), and each
question's sample is the first n_q tasks of its own region in that order; the audit is the union, and people label
its tasks on every question. Why each test stays exact: a uniform random order of all open tasks, restricted to a
region, is a uniform random order of that region, so each question's first n_q are a uniform sample of its region,
drawn after its model, region and n_q were fixed; each question is tested on its own sample alone (the other
questions' audit tasks that fall in its region would weigh the regions' overlap more, and are ordinary human
labels for it). So each question keeps its promise as a lone question would, and where regions overlap the samples
share tasks: people label fewer than the sizes' sum. The promise is per question: all of Q questions keep theirs
with probability at least 1 - Q(1 - level). A question's test runs once its own sample is labeled, whatever the
others' state. `apply` writes one model annotation per task holding results for the questions the model labels
there (a multi-label one that chose no label as an empty choice, so that none-applies reads back as an answer),
none where it labels no question; the task's other questions stay people's.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from tqdm.auto import tqdm

from backend.errors import LabelloopError
from backend.labelstudio import audit, model_labels
from backend.labelstudio import client as ls_client
from backend.labelstudio import schema as schemas
from backend.labelstudio import tasks as ls_tasks
from backend.labelstudio.records import field_of, is_synthetic
from backend.labelstudio.sync import get_project
from backend.learning import classifier
from backend.loop import routing
from backend.loop.finish_file import (
    ApplyRecord,
    Estimate,
    FinishFile,
    QuestionEntry,
    QuestionSummary,
    TaskRow,
    UndoRecord,
)
from backend.quality import gold
from backend.settings import Settings

if TYPE_CHECKING:  # the loop imports the LLM engine (torch): only where a model is needed, not for --undo
    from backend.loop.project_loop import Loop

DEFAULT_TARGET = routing.DEFAULT_TARGET
DEFAULT_LEVEL = routing.DEFAULT_LEVEL
BOUNDS = ("exact", "ppi")  # how an audit's answers bound a threshold's accuracy: Clopper-Pearson, prediction-powered
# Annotation deletes at once. Label Studio 1.23.2 on SQLite, 2 cores: one takes ~0.37 s alone; 4 at once ~0.2 s
# each. It serialises the writes itself.
WORKERS = 4
# The model's labels are written as a prediction set of this name and a unique suffix, turned into annotations by
# Label Studio's own action, then deleted (write_labels); a set of this prefix left by a killed run is deleted first.
LABEL_SET = "labelloop-finish-"
# Predictions per import request: Label Studio 1.23.2 recounts every task of the project on each request (49 s
# for 8,000 predictions into a 10,000-task project at 1,000 per request), so few large ones.
LABEL_CHUNK = 5000
ACTION_CHUNK = 2000  # tasks per "Create Annotations From Predictions" request
SCORE_CHUNK = 64  # texts per progress step while scoring
# Task fields read per task, and (Label Studio applies the same list to nested annotations) the annotation fields.
_STATE_INCLUDE = ",".join(dict.fromkeys(("id", "data", "meta", "annotations", *model_labels.FIELDS)))

SOURCES = ("human", "model", "needs_person", "audit", "gold", "synthetic", "unreadable")


class FinishError(LabelloopError, RuntimeError):
    """The dataset cannot be finished as asked; the message is one line saying why."""

    http_status = 400


# ---------------------------------------------------------------- what Label Studio holds


@dataclass
class TaskState:
    id: int
    text: str | None
    origin: str | None  # "gold", "synthetic", or None for a task of the dataset
    # The model's annotations: (id, the answers it holds by question from_name; see held_answers).
    ours: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    others: int = 0  # any other annotation: a person's (skipped ones too), or a model label a person saved since
    edited_ours: list[int] = field(default_factory=list)  # model labels a person has saved since: theirs now


def held_answers(annotation: Any, questions: tuple[schemas.Schema, ...]) -> dict[str, str]:
    """The answers an annotation holds, by question: each question it has a result for (a multi-label question's
    result may choose no label: the answer that none applies, ""), none for a question it does not mention."""
    named = {item.get("from_name") for item in field_of(annotation, "result") or [] if isinstance(item, dict)}
    out = {}
    for question in questions:
        if question.from_name in named:
            label = ls_tasks.annotation_label(annotation, question)
            if label is not None:
                out[question.from_name] = label
    return out


def read_states(
    client: Any,
    project_id: int,
    config: schemas.Config | schemas.Schema | None,
    gold_set: gold.GoldSet | None = None,
) -> dict[int, TaskState]:
    """Every task of the project with its annotations sorted into the model's and everyone else's; with a gold set,
    its tasks are marked as gold (apply and undo look at annotations only)."""
    questions = schemas.as_config(config).questions if config is not None else ()
    tasks = ls_tasks.list_tasks(
        client,
        project_id,
        f"reading the tasks and annotations of project {project_id}",
        fields="all",
        include=_STATE_INCLUDE,
    )
    states = {}
    for task in tasks:
        data = task.data if isinstance(task.data, dict) else {}
        text = questions[0].text_of(data) if questions else None
        origin = None
        if is_synthetic(task):
            origin = "synthetic"
        elif gold_set is not None and isinstance(text, str) and gold_set.is_gold(text):
            origin = "gold"
        state = TaskState(task.id, text if isinstance(text, str) else None, origin)
        for annotation in task.annotations or []:
            number = field_of(annotation, "id")
            if model_labels.is_model_annotation(annotation):
                state.ours.append((number, held_answers(annotation, questions)))
            else:
                state.others += 1
                if model_labels.is_marked(annotation):
                    state.edited_ours.append(number)
        states[task.id] = state
    return states


def project_schema(client: Any, project_id: int) -> tuple[Any, schemas.Config]:
    """The project and every question of its config (each is finished on its own)."""
    project = get_project(client, project_id)
    try:
        return project, schemas.parse_config(project.label_config or "")
    except schemas.SchemaError as e:
        raise FinishError(f"project {project_id}'s labeling config cannot be finished by this backend: {e}") from None


# ---------------------------------------------------------------- the dataset


def make_loop(settings: Settings, predictor: Callable[[], Any]) -> "Loop":
    """The backend's loop in this process, with the predictor loaded on first use and once."""
    from backend.loop.project_loop import Loop
    from backend.metrics import Metrics

    lock = threading.Lock()
    loaded: list[Any] = []

    def once() -> Any:
        with lock:
            if not loaded:
                loaded.append(predictor())
            return loaded[0]

    return Loop(settings, once, Metrics())


def check_target(target: float, level: float) -> None:
    for name, value in (("target", target), ("level", level)):
        if not isinstance(value, (int, float)) or not 0 < value < 1:
            raise FinishError(f"the {name} must lie strictly between 0 and 1 (e.g. 0.95), got {value!r}")


@dataclass
class Scores:
    """What the backend computes for texts (score_questions)."""

    vectors: np.ndarray  # what the backend's learner reads (TextFeatures.features)
    llm: dict[str, np.ndarray]  # from_name -> the LLM's served probabilities
    read: dict[
        str, np.ndarray
    ]  # from_name -> the LLM's probabilities a trained model reads (a cascade's first model's)
    info: dict  # the LLM's version and the vectors' name, for the plan


def score_questions(
    loop: "Loop", config: schemas.Config, texts: list[str], progress: bool, project: str | None = None
) -> Scores:
    """The texts' vectors and every question's calibrated LLM probabilities, as the backend computes them (cached on
    disk), with the project's own calibration where the backend measured one in a shared DATA_DIR."""
    features = loop.text.features()
    pool = loop.pool(project)
    parts = []
    with tqdm(total=len(texts), unit="task", desc="score", disable=not progress or not texts) as bar:
        for start in range(0, len(texts), SCORE_CHUNK):
            batch = texts[start : start + SCORE_CHUNK]
            parts.append(loop.text.vectors(config, batch, features, pool))
            bar.update(len(batch))
    llm, llm_version = loop.text.llm_answers(config, texts, pool)  # computed with the vectors above: a cache lookup
    read = loop.text.first_answers(config, texts, pool)[0]
    loop.text.save()  # a following --apply, or the backend sharing DATA_DIR, reads them instead of scoring again
    return Scores(np.vstack(parts), llm, read, {"llm_version": llm_version, "features": features})


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_audit(client: Any, project_id: int) -> tuple[audit.Audit | None, int | None]:
    try:
        return audit.read(client, project_id)
    except audit.AuditStateError as e:
        raise FinishError(str(e)) from None


@dataclass
class _Route:
    """One question's way through build: its people's answers, its part of the audit, its model's answers."""

    question: schemas.Schema
    human: dict[int, str]  # task -> people's answer
    plan: audit.QuestionPlan | None
    train: list[int]  # the tasks its model is fitted on
    audited: list[int]  # its audit sample's tasks people answered it on
    pending: list[int]  # its audit sample's tasks still without people's answer to it
    y: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    model: dict = field(default_factory=dict)
    heldout: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # out-of-fold on `train`
    audit_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    open_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    open_conf: np.ndarray = field(default_factory=lambda: np.zeros(0))  # confidence() of open_probs
    status: str = "none"
    chosen: routing.Threshold | None = None

    @property
    def multiple(self) -> bool:
        return self.question.multiple

    @property
    def region(self) -> set[int]:
        """The open tasks its plan lets the model label (none without a plan)."""
        return set(self.plan.region) if self.plan else set()


def _fit(route: _Route, learner: str, scores: Scores, rows: dict[int, int], rest: list[int]) -> None:
    """The question's model fitted on its `train` tasks: its out-of-fold probabilities on them and its probabilities
    on `rest` (the audit's, then the open tasks). With too few labels for a fit, the LLM alone: it never trained on
    the labels, so its probabilities on them are held out already."""
    n = len(route.question.labels)
    train = [rows[i] for i in route.train]
    others = [rows[i] for i in rest]
    vectors, read, llm = scores.vectors, scores.read[route.question.from_name], scores.llm[route.question.from_name]
    try:
        route.heldout = classifier.out_of_fold(learner, vectors[train], read[train], route.y, n)
        fitted = classifier.fit(learner, vectors[train], read[train], route.y, n)
        probs = fitted.predict_proba(vectors[others], read[others]) if others else np.zeros((0, n))
        route.model.update(kind=learner, trained_on=len(train))  # "kind": the plan's key since format 1
    except classifier.TrainingError as e:
        route.model["fallback"] = f"the LLM alone: {e}"
        route.heldout, probs = llm[train], llm[others]
    route.audit_probs, route.open_probs = probs[: len(route.audited)], probs[len(route.audited) :]
    route.open_conf = route.question.confidence(route.open_probs)


def _draw(
    routes: dict[str, _Route], open_ids: list[int], target: float, level: float, seed: int
) -> dict[str, audit.QuestionPlan] | None:
    """Each question's part of a new audit (see the module's docstring); None when no question's audit pays."""
    proposals = {}
    for name, r in routes.items():
        proposal = routing.plan_audit(
            r.question.confidence(r.heldout),
            r.question.correct(r.heldout, r.y),
            r.open_conf,
            target,
            level,
        )
        if proposal.size and proposal.region is not None:  # a region of None comes with no audit
            proposals[name] = proposal
    if not proposals:
        return None
    # One order for every question, seeded by the project: a dry run shows the sample --apply would draw from the
    # same labels, and each question's sample is the head of its region in it.
    order = [int(i) for i in np.random.default_rng(seed).permutation(np.array(open_ids, dtype=np.int64))]
    parts = {}
    for name, r in routes.items():
        p = proposals.get(name)
        if p is None or p.region is None:
            parts[name] = audit.QuestionPlan([], [], None, None, r.train)
            continue
        region = [i for i, c in zip(open_ids, r.open_conf.tolist()) if c >= p.region]
        inside = set(region)
        sample = [i for i in order if i in inside][: p.size]
        parts[name] = audit.QuestionPlan(sorted(sample), region, p.region, p.expected, r.train)
    return parts


def build(
    client: Any,
    project_id: int,
    loop: "Loop",
    *,
    target: float = DEFAULT_TARGET,
    level: float = DEFAULT_LEVEL,
    progress: bool = False,
    new_audit: bool = False,
    bound: str = "exact",
) -> FinishFile:
    """The finished dataset of the project, as written to the output file (see labelloop finish --help); with
    `new_audit`, planned afresh from every human label as if the project had no audit yet; `bound` one of BOUNDS."""
    check_target(target, level)
    if bound not in BOUNDS:
        raise FinishError(f"unknown bound {bound!r}; choose from {', '.join(BOUNDS)}")
    project, config = project_schema(client, project_id)
    first = config.primary
    pool = dict(ls_tasks.fetch_pool(client, project_id, first))
    gold_set = gold.project_gold(loop.settings.gold_file)
    labeled, stats = ls_tasks.fetch_labeled(client, project_id, config, gold_set=gold_set)
    states = read_states(client, project_id, config, gold_set)  # read last: a task deleted meanwhile drops out
    answers = {t.task_id: t.answers for t in labeled if t.task_id in states}
    text_of = {**pool, **{t.task_id: t.text for t in labeled}}

    source: dict[int, str] = {}
    for task_id, state in states.items():
        text = pool.get(task_id)
        if task_id in answers:
            source[task_id] = "human"
        elif state.origin:
            source[task_id] = state.origin
        elif not isinstance(text, str) or not text.strip():
            source[task_id] = "unreadable"
        else:
            source[task_id] = "open"
    open_ids = sorted(i for i, s in source.items() if s == "open")
    plan, tab = (None, None) if new_audit else _read_audit(client, project_id)
    if plan is not None and (plan.target, plan.level) != (target, level):
        raise FinishError(
            f"the audit of project {project_id} was drawn for a target of {plan.target} at {plan.level} confidence: "
            f"finish with --target {plan.target} --level {plan.level}, or draw a new audit (--new-audit)"
        )
    drawn = set(plan.tasks) if plan else set()
    plans = plan.plans(first.from_name) if plan else {}
    routes: dict[str, _Route] = {}
    for q in config.questions:
        human = {i: a[q.from_name] for i, a in answers.items() if q.from_name in a}
        part = plans.get(q.from_name)
        fitted_on = set(part.trained_on) if part else set(human)
        routes[q.from_name] = _Route(
            q,
            human,
            part,
            # Never the audit's labels: the audit is the model's test, and it must not have seen it.
            [i for i in sorted(human) if i in fitted_on and i not in drawn],
            [i for i in part.tasks if i in human] if part else [],
            [i for i in part.tasks if i in states and i not in human] if part else [],
        )

    scored = sorted({i for r in routes.values() for i in r.train + r.audited}) + open_ids
    rows = {task_id: at for at, task_id in enumerate(scored)}
    info: dict[str, Any] = {}
    if scored:
        scores = score_questions(loop, config, [text_of[i] for i in scored], progress, str(project_id))
        info = scores.info
        learner = loop.text.learner(info["features"])  # what the backend trains on these vectors
    for r in routes.values():
        r.y = r.question.targets([r.human[i] for i in r.train])
        r.model = {"kind": "llm", "trained_on": 0, "fallback": None, **info}
        if scored:
            _fit(r, learner, scores, rows, r.audited + open_ids)
        else:
            n = len(r.question.labels)
            r.heldout = r.audit_probs = r.open_probs = np.zeros((0, n))
            r.open_conf = np.zeros(0)

    status = "none"
    if plan is None:
        parts = _draw(routes, open_ids, target, level, project_id)
        if parts is not None:
            tasks = sorted(set().union(*(p.tasks for p in parts.values())))
            lead = parts[first.from_name]
            several = {name: asdict(p) for name, p in parts.items()} if len(config.questions) > 1 else None
            plan = audit.Audit(
                tasks, lead.region, lead.floor, lead.expected, lead.trained_on, target, level, _now(), several
            )
            drawn, status = set(tasks), "drawn"
            for name, r in routes.items():
                r.plan, r.pending = parts[name], list(parts[name].tasks)
                r.status = "drawn" if r.pending else "none"
    else:
        for r in routes.values():
            if r.plan is None or not r.plan.tasks:
                continue
            if r.pending:
                r.status = "waiting"
                continue
            r.status = "tested"
            y_audit = r.question.targets([r.human[i] for i in r.audited])
            confidence, correct = r.question.confidence(r.audit_probs), r.question.correct(r.audit_probs, y_audit)
            if bound == "ppi":  # the region: the audit's tasks and its open ones
                region = r.region
                open_conf = [c for i, c in zip(open_ids, r.open_conf.tolist()) if i in region]
                region_conf = np.concatenate([confidence, open_conf])
                r.chosen = routing.ppi_audit_threshold(region_conf, confidence, correct, r.plan.expected, target, level)
            else:
                r.chosen = routing.audit_threshold(confidence, correct, r.plan.expected, target, level)
        status = "waiting" if any(r.pending for r in routes.values()) else "tested"

    position = {task_id: at for at, task_id in enumerate(open_ids)}
    regions = {name: r.region for name, r in routes.items()}
    out: list[TaskRow] = []
    for task_id in sorted(states):
        origin = source[task_id]
        per: dict[str, QuestionEntry] = {}
        for name, r in routes.items():
            entry: QuestionEntry = {"source": origin, "label": r.human.get(task_id)}
            if origin == "human" and task_id not in r.human:
                entry["source"] = "needs_person"  # a person annotated the task and left this question out
            elif origin == "open":
                at = position[task_id]
                p = round(float(r.open_conf[at]), 6)
                guess = r.question.answer(r.open_probs[at])
                threshold = r.chosen.threshold if r.chosen else None
                if task_id in drawn:
                    entry.update({"source": "audit", "guess": guess, "probability": p})
                elif threshold is not None and task_id in regions[name] and r.open_conf[at] >= threshold:
                    entry.update({"source": "model", "label": guess, "probability": p})
                else:
                    entry.update({"source": "needs_person", "guess": guess, "probability": p})
            per[name] = entry
        head = per[first.from_name]
        row: TaskRow = {"id": task_id, "source": origin, "label": head["label"]}
        if origin == "open":
            mine = {e["source"] for e in per.values()}
            row["source"] = "audit" if task_id in drawn else "model" if mine == {"model"} else "needs_person"
            if "guess" in head:
                row["guess"] = head["guess"]
            if "probability" in head:
                row["probability"] = head["probability"]
        row["questions"] = per
        out.append(row)
    counts = {name: sum(1 for r in out if r["source"] == name) for name in SOURCES}

    def least_sure(row: TaskRow) -> tuple[float, int]:
        # A task needs a person for its questions the model does not label: the least sure of those sorts it.
        unsure = [e["probability"] for e in row["questions"].values() if e["source"] == "needs_person"]
        return min(unsure, default=row.get("probability", 0.0)), row["id"]

    waiting = sorted((r for r in out if r["source"] == "needs_person"), key=least_sure)
    unchosen = routing.Threshold(None, target, level, 0, None, None)
    questions = {name: _summary(r, out, regions[name], unchosen, bound) for name, r in routes.items()}
    return {
        "project": project_id,
        "title": project.title,
        "created": _now(),
        "labels": list(first.labels),
        "model": routes[first.from_name].model,
        "estimate": questions[first.from_name]["estimate"],
        "audit": {
            "status": status,
            "tab": tab,
            "size": len(plan.tasks) if plan else 0,
            "labeled": sum(1 for i in plan.tasks if i in answers) if plan else 0,
            "pending": [i for i in plan.tasks if any(i in r.pending for r in routes.values())] if plan else [],
            "region_tasks": len(set().union(*regions.values())),
            "floor": plan.floor if plan else None,
            "expected": plan.expected if plan else None,
            "drawn": plan.drawn if plan else None,
            "plan": audit.as_dict(plan) if plan else None,
        },
        "counts": {"tasks": len(out), **counts},
        "tasks": out,
        "needs_person": [r["id"] for r in waiting],
        "human_labels_read": vars(stats),
        "questions": questions,
    }


def _summary(
    route: _Route, rows: list[TaskRow], region: set[int], unchosen: routing.Threshold, bound: str
) -> QuestionSummary:
    """A question's part of the dataset: its model, threshold, audit and counts, and the share people label."""
    name = route.question.from_name
    counts = {source: sum(1 for r in rows if r["questions"][name]["source"] == source) for source in SOURCES}
    people = counts["human"] + counts["audit"] + counts["needs_person"]
    plan = route.plan
    estimate: Estimate = {
        **(route.chosen or unchosen).as_dict(),
        "rule": "audit",
        "bound": bound,
        "model_labeled": counts["model"],
    }
    return {
        "multiple": route.multiple,
        "labels": list(route.question.labels),
        "confidence": "every label's decision: min of max(p, 1 - p)" if route.multiple else "top probability",
        "model": route.model,
        "estimate": estimate,
        "audit": {
            "status": route.status,
            "size": len(plan.tasks) if plan else 0,
            "labeled": len(route.audited),
            "pending": route.pending,
            "region_tasks": len(region),
            "floor": plan.floor if plan else None,
            "expected": plan.expected if plan else None,
        },
        "counts": counts,
        # Of the dataset's tasks (gold, synthetic and unreadable ones aside), the share people label on this question.
        "human_fraction": round(people / (people + counts["model"]), 4) if people + counts["model"] else None,
    }


# ---------------------------------------------------------------- writing into Label Studio


def _each(items: list, call: Callable[[Any], Any], desc: str, progress: bool, workers: int) -> list[tuple]:
    """(item, answer, None) or (item, None, error line) per item, in order; a few at once."""
    out: dict[int, tuple] = {}

    def one(index: int) -> None:
        try:
            out[index] = (items[index], call(items[index]), None)
        except ls_tasks.LabelStudioUnavailable as e:
            out[index] = (items[index], None, str(e))

    with tqdm(total=len(items), unit="annotation", desc=desc, disable=not progress or not items) as bar:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for _ in pool.map(one, range(len(items))):
                bar.update(1)
    return [out[index] for index in range(len(items))]


def write_labels(
    client: Any, project_id: int, config: schemas.Config, todo: list[tuple[int, dict[str, str]]], progress: bool
) -> None:
    """Create one model annotation per (task, answers) in bulk: the marked results as a prediction set of their own,
    turned into annotations by Label Studio's "Create Annotations From Predictions" action (which converts only
    predictions that have none yet), then the set deleted. Why not one POST per annotation: Label Studio 1.23.2 does
    its bookkeeping per request, 13-14 annotations/s at best on 2 cores whatever the concurrency, about 12 minutes
    for 10,000; here the same takes ~1 minute of writes and the set's delete (docs/learning.md, bench-finish).
    The caller reads Label Studio again to see what exists: the action answers with a count, not the ids."""
    if not todo:
        return
    version = f"{LABEL_SET}{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}"
    predictions = [
        {"task": task_id, "result": model_labels.mark_result(_result(config, answers)), "model_version": version}
        for task_id, answers in todo
    ]
    with tqdm(total=len(todo) * 2, unit="label", desc="annotate", disable=not progress) as bar:
        ls_tasks.push_predictions(
            client, project_id, predictions, LABEL_CHUNK, lambda done, total: bar.update(done - bar.n)
        )
        ids = [task_id for task_id, _ in todo]
        for start in range(0, len(ids), ACTION_CHUNK):
            chunk = ids[start : start + ACTION_CHUNK]
            with ls_client.calling(client, f"turning the model's labels of {len(chunk)} tasks into annotations"):
                # No retries: a retry after a lost answer finds the predictions converted and does nothing more.
                client.actions.create(
                    id="predictions_to_annotations",
                    project=project_id,
                    selected_items={"all": False, "included": chunk},
                    request_options={
                        "additional_body_parameters": {"model_version": version},
                        "timeout_in_seconds": 600,
                        "max_retries": 0,
                    },
                )
            bar.update(len(chunk))
    _delete_set(client, project_id, version, progress)


def _result(config: schemas.Config, answers: dict[str, str]) -> list[dict]:
    return [
        q.result(*(q.members(answers[q.from_name]) if q.multiple else (answers[q.from_name],)))
        for q in config.questions
        if q.from_name in answers
    ]


def _clear_label_sets(client: Any, project_id: int, progress: bool = False) -> bool:
    """Delete the label sets a killed run left (their predictions never became annotations, or did and the set
    stayed); True if there was one."""
    left = [v for v in ls_tasks.model_versions(client, project_id) if v.startswith(LABEL_SET)]
    for version in left:
        _delete_set(client, project_id, version, progress)
    return bool(left)


def _delete_set(client: Any, project_id: int, version: str, progress: bool) -> None:
    if progress:  # Label Studio deletes one prediction at a time: minutes for 10,000
        print(f"deleting the prediction set {version} the labels were written through ...", file=sys.stderr, flush=True)
    ls_tasks.delete_model_version(client, project_id, version)


def _delete(client: Any, annotation_id: int, tries: int = 3) -> None:
    for attempt in range(tries):
        try:
            with ls_client.calling(client, f"deleting annotation {annotation_id}"):
                client.annotations.delete(id=annotation_id)
            return
        except ls_tasks.LabelStudioUnavailable as e:
            if e.status == 404:
                return  # gone already: what was wanted
            # 401: the SDK renews a Personal Access Token's access token when it expires; a request sent beside
            # the renewal carries the old one (1 of 8,746 deletes in a 9-minute undo). A delete may be sent again.
            if e.status != 401 or attempt == tries - 1:
                raise


def _remove(
    client: Any, doomed: list[tuple[int, int, str]], record: ApplyRecord | UndoRecord, progress: bool, workers: int
) -> None:
    for (task_id, annotation, reason), _, error in _each(
        doomed, lambda d: _delete(client, d[1]), "remove", progress, workers
    ):
        if error:
            record["failed"].append({"task": task_id, "annotation": annotation, "error": error})
        else:
            record["removed"].append({"task": task_id, "annotation": annotation, "reason": reason})


def wanted(row: TaskRow, first: str) -> dict[str, str]:
    """The answers a dataset row gives the model, by question: those whose source is "model"."""
    per = row.get("questions")
    if not isinstance(per, dict):  # a file written before several questions
        per = {first: {"source": row.get("source", ""), "label": row.get("label")}}
    return {
        name: label
        for name, entry in per.items()
        if entry.get("source") == "model" and isinstance(label := entry.get("label"), str)
    }


def apply(
    client: Any, project_id: int, dataset: FinishFile, progress: bool = False, workers: int = WORKERS
) -> ApplyRecord:
    """Make Label Studio hold the dataset's model labels as model annotations, and a newly drawn audit as its tab;
    what was done (also noted on the rows of the tasks that hold one as "annotation"). Only tasks without any other
    annotation get a model label: one annotation per task, holding the questions the model labels there."""
    config = project_schema(client, project_id)[1]
    first = config.primary.from_name
    asked = set(config.names)
    wants = {}
    for row in dataset["tasks"]:
        want = {name: label for name, label in wanted(row, first).items() if name in asked}
        if want:
            wants[row["id"]] = want
    states = read_states(client, project_id, config)
    record: ApplyRecord = {
        "mark": {
            "result_meta": {model_labels.META_KEY: model_labels.MARK_TEXT},
            "note": "backend/labelstudio/model_labels.py",
        },
        "created": [],
        "kept": [],
        "removed": [],
        "skipped": [],
        "failed": [],
        "audit_tab": None,
    }
    drawn = dataset.get("audit")
    fields = drawn.get("plan") if drawn and drawn.get("status") == "drawn" else None
    if drawn and fields:  # first: the plan is kept before anything is written by it
        record["audit_tab"] = drawn["tab"] = audit.write(client, project_id, audit.Audit(**fields))
    doomed, todo = [], []
    for task_id, state in sorted(states.items()):
        want = wants.get(task_id, {})
        if want and state.others:
            record["skipped"].append(task_id)  # annotated meanwhile (or skipped by someone): never beside it
            want = {}
        keep = next((number for number, held in state.ours if want and held == want), None)
        for number, held in state.ours:
            if number == keep:
                continue
            reason = (
                "a person annotated the task"
                if state.others
                else "duplicate"
                if want and held == want
                else "label changed"
                if want
                else "below the threshold now"
            )
            doomed.append((task_id, number, reason))
        if keep is not None:
            record["kept"].append({"task": task_id, "annotation": keep, "label": want.get(first), "answers": want})
        elif want:
            todo.append((task_id, want))
    _remove(client, doomed, record, progress, workers)  # first: a task never holds two model labels
    record["label_set_removed"] = _clear_label_sets(client, project_id, progress)  # a killed run's
    written = True
    try:
        write_labels(client, project_id, config, todo, progress)
    except ls_tasks.LabelStudioUnavailable as e:
        written = False  # some may exist: what Label Studio holds is read below, and a run again writes the rest
        record["failed"].append({"task": None, "error": str(e)})

    # What Label Studio now holds: the labels written, and any a person annotated beside meanwhile (or another run
    # wrote the same): those are taken back.
    states = read_states(client, project_id, config)
    late = []
    for task_id, state in sorted(states.items()):
        extra = state.ours if state.others else state.ours[1:]
        late += [
            (task_id, number, "a person annotated the task" if state.others else "duplicate") for number, _ in extra
        ]
    if late:
        _remove(client, late, record, progress, workers)
    gone = {number for _, number, _ in late}
    for task_id, want in todo:
        made = [n for n, held in states[task_id].ours if n not in gone and held == want] if task_id in states else []
        if made:
            record["created"].append(
                {"task": task_id, "annotation": made[0], "label": want.get(first), "answers": want}
            )
        elif written and task_id in states and not states[task_id].others:
            record["failed"].append({"task": task_id, "error": "Label Studio holds no model label for it"})
    record["kept"] = [k for k in record["kept"] if k["annotation"] not in gone]
    holding = {item["task"]: item["annotation"] for item in record["created"] + record["kept"]}
    for row in dataset["tasks"]:
        if row["id"] in holding:
            row["annotation"] = holding[row["id"]]
    return record


def undo(client: Any, project_id: int, progress: bool = False, workers: int = WORKERS) -> UndoRecord:
    """Remove every model annotation of the project that no person has saved since, and the audit's tab (its plan;
    the labels people gave stay); what was done."""
    get_project(client, project_id)
    states = read_states(client, project_id, None)
    record: UndoRecord = {
        "removed": [],
        "failed": [],
        "kept_edited": [],
        "audit_tab_removed": audit.delete(client, project_id),
        "label_set_removed": _clear_label_sets(client, project_id, progress),  # a killed --apply's
    }
    doomed = [(task_id, number, "undo") for task_id, s in sorted(states.items()) for number, _ in s.ours]
    record["kept_edited"] = [
        {"task": task_id, "annotation": number} for task_id, s in sorted(states.items()) for number in s.edited_ours
    ]
    _remove(client, doomed, record, progress, workers)
    return record


# ---------------------------------------------------------------- files
