"""Finishing a project's dataset: people's labels where they gave one, the model's where it is sure enough to meet
an accuracy target with a stated confidence, and the list of tasks that still need a person (scripts/finish.py).

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
   model labels the region's open tasks at or above it.
Why this holds whatever order people labeled in: the audit is a uniform sample of the region, drawn after the
model was fixed, and the model never saw it; so each threshold's Clopper-Pearson test is exact for the region, and
the fixed sequence errs only if its first false claim passes, one test's error (at most 1 - level). The labels the
ranking chose plan the audit and nothing else: a skewed plan costs labels, never the promise. Tasks added or
labeled since the plan are left to people or counted as theirs; --new-audit plans again from every label.

`apply` writes the model's labels into Label Studio as annotations marked as the model's (model_labels.py),
only on tasks nobody has annotated, and keeps Label Studio matching the dataset when run again: nothing is written
twice, a model label a person has since annotated beside (or that fell below a new threshold) is taken back, a
changed one is replaced. `undo` removes every model annotation no person has saved since, and the audit's tab.
"""

from __future__ import annotations

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
from backend.quality import gold
from backend.settings import Settings

if TYPE_CHECKING:  # the loop imports the LLM engine (torch): only where a model is needed, not for --undo
    from backend.loop.project_loop import Loop

DEFAULT_TARGET = routing.DEFAULT_TARGET
DEFAULT_LEVEL = routing.DEFAULT_LEVEL
# Annotation writes at once. Label Studio 1.23.2 on SQLite, 2 cores: one create takes ~0.37 s alone; 4 at once
# ~0.2 s each. It serialises the writes itself.
WORKERS = 4
SCORE_CHUNK = 64  # texts per progress step while scoring
# Task fields read per task, and (Label Studio applies the same list to nested annotations) the annotation fields.
_STATE_INCLUDE = ",".join(dict.fromkeys(("id", "data", "meta", "annotations", *model_labels.FIELDS)))

SOURCES = ("human", "model", "needs_person", "audit", "gold", "synthetic", "unreadable")


class FinishError(LabelloopError, RuntimeError):
    """The dataset cannot be finished as asked; the message is one line saying why."""


# ---------------------------------------------------------------- what Label Studio holds


@dataclass
class TaskState:
    id: int
    text: str | None
    kind: str | None  # "gold", "synthetic", or None for a task of the dataset
    ours: list[tuple[int, str | None]] = field(default_factory=list)  # the model's annotations: (id, label)
    others: int = 0  # any other annotation: a person's (skipped ones too), or a model label a person saved since
    edited_ours: list[int] = field(default_factory=list)  # model labels a person has saved since: theirs now


def read_states(
    client: Any, project_id: int, schema: schemas.Schema | None, gold_set: gold.GoldSet | None = None
) -> dict[int, TaskState]:
    """Every task of the project with its annotations sorted into the model's and everyone else's; with a gold set,
    its tasks are marked as gold (apply and undo look at annotations only)."""
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
        text = schema.text_of(data) if schema else None
        kind = None
        if is_synthetic(task):
            kind = "synthetic"
        elif gold_set is not None and isinstance(text, str) and gold_set.is_gold(text):
            kind = "gold"
        state = TaskState(task.id, text if isinstance(text, str) else None, kind)
        for annotation in task.annotations or []:
            number = field_of(annotation, "id")
            if model_labels.is_model_annotation(annotation):
                label = ls_tasks.annotation_label(annotation, schema) if schema else None
                state.ours.append((number, label))
            else:
                state.others += 1
                if model_labels.is_marked(annotation):
                    state.edited_ours.append(number)
        states[task.id] = state
    return states


def project_schema(client: Any, project_id: int) -> tuple[Any, schemas.Config]:
    """The project and its config, whose first question (the one finished) must be single-choice."""
    project = get_project(client, project_id)
    try:
        schemas.parse_single(project.label_config or "")
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


def score_texts(
    loop: "Loop", config: schemas.Config, texts: list[str], progress: bool, project: str | None = None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The texts' vectors and calibrated LLM probabilities, as the backend computes them (cached on disk), with the
    project's own calibration where the backend measured one in a shared DATA_DIR."""
    features = loop.text.kind()
    pool = loop.pool(project)
    parts = []
    with tqdm(total=len(texts), unit="task", desc="score", disable=not progress or not texts) as bar:
        for start in range(0, len(texts), SCORE_CHUNK):
            batch = texts[start : start + SCORE_CHUNK]
            parts.append(loop.text.vectors(config, batch, features, pool))
            bar.update(len(batch))
    llm, llm_version = loop.text.llm_probs(config, texts, pool)  # computed with the vectors above: a cache lookup
    loop.text.save()  # a following --apply, or the backend sharing DATA_DIR, reads them instead of scoring again
    return np.vstack(parts), llm, {"llm_version": llm_version, "features": features}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_audit(client: Any, project_id: int) -> tuple[audit.Audit | None, int | None]:
    try:
        return audit.read(client, project_id)
    except audit.AuditStateError as e:
        raise FinishError(str(e)) from None


def _fit(
    loop: "Loop", config: schemas.Config, project: str, texts: list[str], y: np.ndarray, n_labels: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, dict]:
    """The model fitted on the first len(y) texts (labels y): its out-of-fold probabilities on them, its
    probabilities on the rest, and what it is. With too few labels for a fit, the LLM alone: it never trained on
    the labels, so its probabilities on them are held out already."""
    h = len(y)
    model: dict[str, Any] = {"kind": "llm", "trained_on": 0, "fallback": None}
    if not texts:
        return np.zeros((0, n_labels)), np.zeros((0, n_labels)), model
    vectors, llm, info = score_texts(loop, config, texts, progress, project)
    model.update(info)
    kind = loop.text.recipe(info["features"])  # the kind of model the backend trains on these vectors
    try:
        heldout = classifier.out_of_fold(kind, vectors[:h], llm[:h], y, n_labels)
        fitted = classifier.fit(kind, vectors[:h], llm[:h], y, n_labels)
        rest = fitted.predict_proba(vectors[h:], llm[h:]) if len(texts) > h else np.zeros((0, n_labels))
        model.update(kind=kind, trained_on=h)
        return heldout, rest, model
    except classifier.TrainingError as e:
        model["fallback"] = f"the LLM alone: {e}"
        return llm[:h], llm[h:], model


def build(
    client: Any,
    project_id: int,
    loop: "Loop",
    target: float = DEFAULT_TARGET,
    level: float = DEFAULT_LEVEL,
    progress: bool = False,
    new_audit: bool = False,
) -> dict:
    """The finished dataset of the project, as written to the output file (see scripts/finish.py --help); with
    `new_audit`, planned afresh from every human label as if the project had no audit yet."""
    check_target(target, level)
    project, config = project_schema(client, project_id)
    schema = config.primary
    pool = dict(ls_tasks.fetch_pool(client, project_id, schema))
    gold_set = gold.project_gold(loop.settings.gold_file)
    labeled, stats = ls_tasks.fetch_labeled(client, project_id, schema, gold_set=gold_set)
    states = read_states(client, project_id, schema, gold_set)  # read last: a task deleted meanwhile drops out
    human = {t.task_id: t.label for t in labeled if t.task_id in states}

    source: dict[int, str] = {}
    for task_id, state in states.items():
        text = pool.get(task_id)
        if task_id in human:
            source[task_id] = "human"
        elif state.kind:
            source[task_id] = state.kind
        elif not isinstance(text, str) or not text.strip():
            source[task_id] = "unreadable"
        else:
            source[task_id] = "open"
    human_ids = sorted(human)
    open_ids = sorted(i for i, s in source.items() if s == "open")
    plan, tab = (None, None) if new_audit else _read_audit(client, project_id)
    if plan is not None and (plan.target, plan.level) != (target, level):
        raise FinishError(
            f"the audit of project {project_id} was drawn for a target of {plan.target} at {plan.level} confidence: "
            f"finish with --target {plan.target} --level {plan.level}, or draw a new audit (--new-audit)"
        )
    drawn = set(plan.tasks) if plan else set()
    fitted_on = set(plan.trained_on) if plan else set(human_ids)
    # Never the audit's labels: the audit is the model's test, and it must not have seen it.
    train_ids = [i for i in human_ids if i in fitted_on and i not in drawn]
    audited_ids = [i for i in plan.tasks if i in human] if plan else []
    y = np.array([schema.labels.index(human[i]) for i in train_ids], dtype=int)
    y_audit = np.array([schema.labels.index(human[i]) for i in audited_ids], dtype=int)
    heldout, probs, model = _fit(
        loop,
        config,
        str(project_id),
        [pool[i] for i in train_ids + audited_ids + open_ids],
        y,
        len(schema.labels),
        progress,
    )
    audit_probs, open_probs = probs[: len(audited_ids)], probs[len(audited_ids) :]
    open_conf = open_probs.max(axis=1)

    chosen = routing.Threshold(None, target, level, 0, None, None)
    pending = [i for i in plan.tasks if i in states and i not in human] if plan else []
    if plan is None:
        proposal = routing.plan_audit(heldout.max(axis=1), heldout.argmax(axis=1) == y, open_conf, target, level)
        status = "none"
        if proposal.size and proposal.region is not None:  # a region of None comes with no audit
            in_region = [i for i, c in zip(open_ids, open_conf.tolist()) if c >= proposal.region]
            # Seeded by the project: a dry run shows the sample --apply would draw from the same labels.
            sample = np.random.default_rng(project_id).choice(in_region, size=proposal.size, replace=False)
            plan = audit.Audit(
                sorted(int(i) for i in sample),
                in_region,
                proposal.region,
                proposal.expected,
                train_ids,
                target,
                level,
                _now(),
            )
            pending, drawn, status = plan.tasks, set(plan.tasks), "drawn"
    elif pending:
        status = "waiting"
    else:
        status = "tested"
        chosen = routing.audit_threshold(
            audit_probs.max(axis=1), audit_probs.argmax(axis=1) == y_audit, plan.expected, target, level
        )
    region = set(plan.region) if plan else set()

    position = {task_id: at for at, task_id in enumerate(open_ids)}
    rows = []
    for task_id in sorted(states):
        kind = source[task_id]
        row: dict[str, Any] = {"id": task_id, "source": kind, "label": human.get(task_id)}
        if kind == "open":
            at = position[task_id]
            p = float(open_conf[at])
            label = schema.labels[int(open_probs[at].argmax())]
            if task_id in drawn:
                row.update(source="audit", guess=label, probability=round(p, 6))
            elif chosen.threshold is not None and task_id in region and p >= chosen.threshold:
                row.update(source="model", label=label, probability=round(p, 6))
            else:
                row.update(source="needs_person", guess=label, probability=round(p, 6))
        rows.append(row)
    counts = {name: sum(1 for r in rows if r["source"] == name) for name in SOURCES}
    waiting = sorted((r for r in rows if r["source"] == "needs_person"), key=lambda r: (r["probability"], r["id"]))
    return {
        "project": project_id,
        "title": project.title,
        "created": _now(),
        "labels": list(schema.labels),
        "model": model,
        "estimate": {**chosen.as_dict(), "rule": "audit", "model_labeled": counts["model"]},
        "audit": {
            "status": status,
            "tab": tab,
            "size": len(plan.tasks) if plan else 0,
            "labeled": len(audited_ids),
            "pending": pending,
            "region_tasks": len(region),
            "floor": plan.floor if plan else None,
            "expected": plan.expected if plan else None,
            "drawn": plan.drawn if plan else None,
            "plan": asdict(plan) if plan else None,
        },
        "counts": {"tasks": len(rows), **counts},
        "tasks": rows,
        "needs_person": [r["id"] for r in waiting],
        "human_labels_read": vars(stats),
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


def _create(client: Any, schema: schemas.Schema, task_id: int, label: str) -> int:
    with ls_client.calling(client, f"writing the model's label of task {task_id}"):
        # No retries: a create is not idempotent (a lost answer would write twice); a later run tidies up anyway.
        made = client.annotations.create(
            id=task_id,
            result=[schema.result(label)],
            **model_labels.mark_fields(),
            request_options={"max_retries": 0},
        )
    return int(made.id)


def _delete(client: Any, annotation_id: int) -> None:
    try:
        with ls_client.calling(client, f"deleting annotation {annotation_id}"):
            client.annotations.delete(id=annotation_id)
    except ls_tasks.LabelStudioUnavailable as e:
        if e.status != 404:  # gone already: what was wanted
            raise


def _remove(client, doomed: list[tuple[int, int, str]], record: dict, progress: bool, workers: int) -> None:
    for (task_id, annotation, reason), _, error in _each(
        doomed, lambda d: _delete(client, d[1]), "remove", progress, workers
    ):
        if error:
            record["failed"].append({"task": task_id, "annotation": annotation, "error": error})
        else:
            record["removed"].append({"task": task_id, "annotation": annotation, "reason": reason})


def apply(client: Any, project_id: int, dataset: dict, progress: bool = False, workers: int = WORKERS) -> dict:
    """Make Label Studio hold the dataset's model labels as model annotations, and a newly drawn audit as its tab;
    what was done (also noted on the dataset's model rows as "annotation"). Only tasks without any other
    annotation get a model label."""
    schema = project_schema(client, project_id)[1].primary
    wanted = {r["id"]: r["label"] for r in dataset["tasks"] if r["source"] == "model"}
    states = read_states(client, project_id, schema)
    record: dict[str, Any] = {
        "mark": {**model_labels.mark_fields(), "note": "backend/labelstudio/model_labels.py"},
        "created": [],
        "kept": [],
        "removed": [],
        "skipped": [],
        "failed": [],
        "audit_tab": None,
    }
    drawn = dataset.get("audit") or {}
    if drawn.get("status") == "drawn":  # first: the plan is kept before anything is written by it
        record["audit_tab"] = drawn["tab"] = audit.write(client, project_id, audit.Audit(**drawn["plan"]))
    doomed, todo = [], []
    for task_id, state in sorted(states.items()):
        want = wanted.get(task_id)
        if want and state.others:
            record["skipped"].append(task_id)  # annotated meanwhile (or skipped by someone): never beside it
            want = None
        keep = next((number for number, label in state.ours if want and label == want), None)
        for number, label in state.ours:
            if number == keep:
                continue
            reason = (
                "a person annotated the task"
                if state.others
                else "duplicate"
                if want and label == want
                else "label changed"
                if want
                else "below the threshold now"
            )
            doomed.append((task_id, number, reason))
        if keep is not None:
            record["kept"].append({"task": task_id, "annotation": keep, "label": want})
        elif want:
            todo.append((task_id, want))
    _remove(client, doomed, record, progress, workers)  # first: a task never holds two model labels
    for (task_id, label), made, error in _each(
        todo, lambda t: _create(client, schema, *t), "annotate", progress, workers
    ):
        if error:
            record["failed"].append({"task": task_id, "error": error})
        else:
            record["created"].append({"task": task_id, "annotation": made, "label": label})

    # A person may have annotated a task while its model label was being written, or another run wrote the same
    # one: read again and take those back.
    late = []
    for task_id, state in sorted(read_states(client, project_id, schema).items()):
        extra = state.ours if state.others else state.ours[1:]
        late += [
            (task_id, number, "a person annotated the task" if state.others else "duplicate") for number, _ in extra
        ]
    if late:
        _remove(client, late, record, progress, workers)
        gone = {number for _, number, _ in late}
        record["created"] = [c for c in record["created"] if c["annotation"] not in gone]
        record["kept"] = [k for k in record["kept"] if k["annotation"] not in gone]
    held = {item["task"]: item["annotation"] for item in record["created"] + record["kept"]}
    for row in dataset["tasks"]:
        if row["id"] in held:
            row["annotation"] = held[row["id"]]
    return record


def undo(client: Any, project_id: int, progress: bool = False, workers: int = WORKERS) -> dict:
    """Remove every model annotation of the project that no person has saved since, and the audit's tab (its plan;
    the labels people gave stay); what was done."""
    get_project(client, project_id)
    states = read_states(client, project_id, None)
    record: dict[str, Any] = {
        "removed": [],
        "failed": [],
        "kept_edited": [],
        "audit_tab_removed": audit.delete(client, project_id),
    }
    doomed = [(task_id, number, "undo") for task_id, s in sorted(states.items()) for number, _ in s.ours]
    record["kept_edited"] = [
        {"task": task_id, "annotation": number} for task_id, s in sorted(states.items()) for number in s.edited_ours
    ]
    _remove(client, doomed, record, progress, workers)
    return record


# ---------------------------------------------------------------- files
