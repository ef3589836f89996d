"""Finishing a project's dataset: people's labels where they gave one, the model's where it is sure enough to meet
an accuracy target with a stated confidence, and the list of tasks that still need a person (scripts/finish.py).

The model is the one the backend would train now (backend/loop/project_loop.py): a blend of the LLM's hidden state and its
calibrated probabilities (backend/loop/classifier.py), fitted on every human label of the project (gold and synthetic
tasks left out, as training leaves them out, and the model's own earlier labels too: backend/labelstudio/model_labels.py).
Its out-of-fold probabilities on those labels choose the threshold (backend/loop/routing.py): the lowest confidence whose
held-out accuracy has a one-sided lower bound at the target. With too few labels for a fit, the LLM alone is the
model; it never trained on the labels, so its probabilities on them are already held out.

`apply` writes the model's labels into Label Studio as annotations marked as the model's (backend/labelstudio/model_labels.py),
only on tasks nobody has annotated, and keeps Label Studio matching the dataset when run again: nothing is written
twice, a model label a person has since annotated beside (or that fell below a new threshold) is taken back, a
changed one is replaced. `undo` removes every model annotation no person has saved since, and nothing else.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from tqdm.auto import tqdm

from backend.loop import classifier
from backend.quality import gold
from backend.labelstudio import tasks as ls_tasks
from backend.labelstudio import model_labels
from backend.loop import routing
from backend.labelstudio import schema as schemas
from backend.labelstudio.records import is_synthetic
from backend.labelstudio.sync import SyncError, get_project
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

SOURCES = ("human", "model", "needs_person", "gold", "synthetic", "unreadable")


class FinishError(SyncError):
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
    tasks = ls_tasks._list_tasks(
        client, project_id, f"reading the tasks and annotations of project {project_id}",
        fields="all", include=_STATE_INCLUDE,
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
            number = ls_tasks._get(annotation, "id")
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
    from backend.serving.metrics import Metrics

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


def build(
    client: Any,
    project_id: int,
    loop: "Loop",
    target: float = DEFAULT_TARGET,
    level: float = DEFAULT_LEVEL,
    progress: bool = False,
) -> dict:
    """The finished dataset of the project, as written to the output file (see scripts/finish.py --help)."""
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
    texts = [pool[i] for i in human_ids + open_ids]
    n_labels = len(schema.labels)
    y = np.array([schema.labels.index(human[i]) for i in human_ids], dtype=int)

    model: dict[str, Any] = {"kind": "llm", "trained_on": 0, "fallback": None}
    if texts:
        vectors, llm, info = score_texts(loop, config, texts, progress, str(project_id))
        model.update(info)
        h = len(human_ids)
        kind = loop.text.recipe(info["features"])  # the kind of model the backend trains on these vectors
        try:
            heldout = classifier.out_of_fold(kind, vectors[:h], llm[:h], y, n_labels)
            fitted = classifier.fit(kind, vectors[:h], llm[:h], y, n_labels)
            open_probs = fitted.predict_proba(vectors[h:], llm[h:]) if open_ids else np.zeros((0, n_labels))
            model.update(kind=kind, trained_on=h)
        except classifier.TrainingError as e:
            heldout, open_probs = llm[:h], llm[h:]
            model["fallback"] = f"the LLM alone: {e}"
    else:
        heldout, open_probs = np.zeros((0, n_labels)), np.zeros((0, n_labels))
    chosen = routing.threshold_for(heldout, y, target, level)

    guess = dict(zip(open_ids, open_probs.argmax(axis=1).tolist())) if open_ids else {}
    confidence = dict(zip(open_ids, open_probs.max(axis=1).tolist())) if open_ids else {}
    rows = []
    for task_id in sorted(states):
        kind = source[task_id]
        row: dict[str, Any] = {"id": task_id, "source": kind, "label": human.get(task_id)}
        if kind == "open":
            p = confidence[task_id]
            label = schema.labels[guess[task_id]]
            if chosen.threshold is not None and p >= chosen.threshold:
                row.update(source="model", label=label, probability=round(p, 6))
            else:
                row.update(source="needs_person", guess=label, probability=round(p, 6))
        rows.append(row)
    counts = {name: sum(1 for r in rows if r["source"] == name) for name in SOURCES}
    waiting = sorted((r for r in rows if r["source"] == "needs_person"), key=lambda r: (r["probability"], r["id"]))
    return {
        "project": project_id,
        "title": project.title,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "labels": list(schema.labels),
        "model": model,
        "estimate": {**chosen.as_dict(), "model_labeled": counts["model"]},
        "counts": {"tasks": len(rows), **counts},
        "tasks": rows,
        "needs_person": [r["id"] for r in waiting],
        "human_labels_read": vars(stats),
    }


# ---------------------------------------------------------------- writing into Label Studio


def _each(items: list, call: Callable[[Any], Any], desc: str, progress: bool, workers: int) -> list[tuple]:
    """(item, answer, None) or (item, None, error line) per item, in order; a few at once."""
    out: list[tuple] = [None] * len(items)

    def one(index: int) -> None:
        try:
            out[index] = (items[index], call(items[index]), None)
        except ls_tasks.LabelStudioUnavailable as e:
            out[index] = (items[index], None, str(e))

    with tqdm(total=len(items), unit="annotation", desc=desc, disable=not progress or not items) as bar:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            for _ in pool.map(one, range(len(items))):
                bar.update(1)
    return out


def _create(client: Any, schema: schemas.Schema, task_id: int, label: str) -> int:
    with ls_tasks._calling(client, f"writing the model's label of task {task_id}"):
        # No retries: a create is not idempotent (a lost answer would write twice); a later run tidies up anyway.
        made = client.annotations.create(
            id=task_id, result=[schema.result(label)], **model_labels.mark_fields(),
            request_options={"max_retries": 0},
        )
    return int(made.id)


def _delete(client: Any, annotation_id: int) -> None:
    try:
        with ls_tasks._calling(client, f"deleting annotation {annotation_id}"):
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


def apply(
    client: Any, project_id: int, dataset: dict, progress: bool = False, workers: int = WORKERS
) -> dict:
    """Make Label Studio hold the dataset's model labels as model annotations; what was done (also noted on the
    dataset's model rows as "annotation"). Only tasks without any other annotation get one."""
    schema = project_schema(client, project_id)[1].primary
    wanted = {r["id"]: r["label"] for r in dataset["tasks"] if r["source"] == "model"}
    states = read_states(client, project_id, schema)
    record: dict[str, Any] = {
        "mark": {**model_labels.mark_fields(), "note": "backend/labelstudio/model_labels.py"},
        "created": [], "kept": [], "removed": [], "skipped": [], "failed": [],
    }
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
            reason = ("a person annotated the task" if state.others else "duplicate" if want and label == want
                      else "label changed" if want else "below the threshold now")
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
        late += [(task_id, number, "a person annotated the task" if state.others else "duplicate")
                 for number, _ in extra]
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
    """Remove every model annotation of the project that no person has saved since; what was done."""
    get_project(client, project_id)
    states = read_states(client, project_id, None)
    record: dict[str, Any] = {"removed": [], "failed": [], "kept_edited": []}
    doomed = [(task_id, number, "undo") for task_id, s in sorted(states.items()) for number, _ in s.ours]
    record["kept_edited"] = [
        {"task": task_id, "annotation": number} for task_id, s in sorted(states.items()) for number in s.edited_ours
    ]
    _remove(client, doomed, record, progress, workers)
    return record


# ---------------------------------------------------------------- files



