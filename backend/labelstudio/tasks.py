"""Labeled tasks and the task pool read from a Label Studio project, and predictions written back to it.

Everything goes through label-studio-sdk 2.x against Label Studio 1.23.2. Any network or API failure comes out
as LabelStudioUnavailable, one readable line, so a background job can log it and try again later.

Behaviour of Label Studio 1.23.2 this module leans on (checked against a live server):
- `tasks.list(only_annotated=True)` does not filter; a Data Manager filter on `total_annotations` does. That
  counter leaves cancelled (skipped) annotations out, so a second filter on `cancelled_annotations` is OR-ed in
  to see tasks that were only ever skipped.
- `include=...` trims a task to the fields named, about 3x faster than `fields="all"`, which also carries every
  prediction (and they pile up: each push adds new ones). The same list also trims the annotations inside:
  `include="id,data,annotations"` yields annotations holding only their id, so their fields are named too.
- Annotations are stored without any check against the labeling config: an empty result, an unknown
  from_name or an unknown choice are all accepted, hence the filtering in `resolve`.
- `POST /api/projects/{id}/import/predictions` drops predictions whose result does not fit the config without an
  error (it answers 201 with a smaller "created" count), but refuses the whole request (400) if one names a task
  that is not in the project.
- `/next` with uncertainty sampling serves the lowest score among predictions whose model_version equals
  project.model_version; older versions' scores on the same task are ignored. The task served stays locked to
  that user for a while, so other users are served the next one. With more than one project member (which the
  open-source edition never records; Enterprise teams do) it picks at random instead: see backend/labelstudio/queue.py.
- Importing predictions twice with the same model_version keeps both sets: Label Studio never replaces one.
  `DELETE /api/projects/{id}/model-versions/` with `{"model_version": v}` deletes one version's predictions
  (not in the SDK); deleting the version the project points at resets project.model_version.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable

from backend.labelstudio import client as ls_client
from backend.labelstudio import model_labels
from backend.labelstudio.client import LabelStudioUnavailable
from backend.labelstudio.records import field_of, is_synthetic, parse_time

if TYPE_CHECKING:  # the type only: labelstudio/ sits below quality/
    from backend.quality import gold

log = logging.getLogger(__name__)

PAGE_SIZE = 500  # tasks per list request; measured: 100 and 1,000 take about the same time per task

_ANNOTATED = json.dumps(
    {
        "filters": {
            "conjunction": "or",
            "items": [
                {"filter": "filter:tasks:total_annotations", "operator": "greater", "type": "Number", "value": 0},
                {"filter": "filter:tasks:cancelled_annotations", "operator": "greater", "type": "Number", "value": 0},
            ],
        },
        # A fixed order keeps page-by-page reading stable while annotators add work.
        "ordering": ["tasks:id"],
    }
)
# Task fields and, because Label Studio applies the same list to nested annotations, the annotation fields read.
_INCLUDE = "id,data,annotations,result,was_cancelled,ground_truth,completed_by,updated_at,created_at,import_id"
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class LabeledTask:
    task_id: int
    text: str
    label: str  # one of schema.labels; read for a Config, the first question's (None when it has no answer)
    annotations: int  # non-cancelled annotations considered
    # Each annotator's latest label (annotator key, label) when a vote decided the label; empty when a
    # ground-truth annotation did (a consensus must not overrule it).
    votes: tuple[tuple[str, str], ...] = ()
    # Every question's resolved label by its from_name (read for a Config; else the one question's).
    answers: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class GoldVote:
    """One annotator's latest answer on a gold task: the yardstick of that annotator, never a training label."""

    task_id: int
    annotator: str  # "user:<id>", or "annotation:<n>" for an annotation without a user
    label: str  # the first question's answer, as `resolve` reads it
    gold: str  # the gold set's label for the task's text
    at: str  # when it was last saved (ISO 8601; "" when Label Studio sent no time)


@dataclass
class FetchStats:
    """What fetch_labeled saw, per task: tasks == labeled + gold + synthetic + model + cancelled + unusable.

    cancelled: every annotation of the task was cancelled (skipped). unusable: the text is missing, or no
    annotation names a label of the config. conflicts: labeled tasks whose annotators disagreed (a subset of
    the labeled ones, resolved by the rule in `resolve`). model: every annotation of the task is the model's
    (backend/labelstudio/model_labels.py: written by labelloop finish --apply, never a human label).
    """

    tasks: int = 0
    cancelled: int = 0
    conflicts: int = 0
    gold: int = 0
    synthetic: int = 0
    unusable: int = 0
    model: int = 0


# ---------------------------------------------------------------- one label per task


def _canonical(choice: Any, schema: Any) -> str | None:
    """The label a choice stands for: a label as is, or a Choice's visible value mapped to its alias."""
    if not isinstance(choice, str):
        return None
    if choice in schema.labels:
        return choice
    names = getattr(schema, "names", ())
    # Annotations made before a Choice got an alias carry its visible value.
    return schema.labels[names.index(choice)] if choice in names else None


def annotation_label(annotation: Any, schema: Any) -> str | None:
    """The one label an annotation gives the schema's Choices, None if it gives none or contradicts itself.

    A multi-label question's answer is the set of labels chosen, as one string (Schema.key), and an annotation that
    chooses none of them says that none applies: "" rather than None."""
    found = set()
    for item in field_of(annotation, "result") or []:
        if not isinstance(item, dict) or item.get("from_name") != schema.from_name:
            continue
        if item.get("to_name", schema.to_name) != schema.to_name:
            continue
        value = item.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        for choice in choices if isinstance(choices, list) else []:
            label = _canonical(choice, schema)
            if label:
                found.add(label)
    if getattr(schema, "multiple", False):
        return schema.key(found)
    return found.pop() if len(found) == 1 else None


def _recency(annotation: Any) -> tuple[datetime, int]:
    # The id breaks ties between equal timestamps: a later annotation has a larger id.
    stamp = field_of(annotation, "updated_at") or field_of(annotation, "created_at")
    number = field_of(annotation, "id")
    return parse_time(stamp) or _OLDEST, number if isinstance(number, int) else -1


def _annotator(annotation: Any, position: int) -> Any:
    user = field_of(annotation, "completed_by")
    if isinstance(user, dict):
        user = user.get("id")
    # Without a user (some imported annotations) every annotation stands for itself.
    return ("user", user) if user is not None else ("annotation", position)


def _usable(annotations: list[Any] | None, schema: Any) -> list[tuple[str, Any]]:
    """(label, annotation) of every annotation not cancelled that names a label of the schema."""
    usable = []
    for annotation in annotations or []:
        if field_of(annotation, "was_cancelled"):
            continue
        label = annotation_label(annotation, schema)
        if label is not None:
            usable.append((label, annotation))
    return usable


def _latest_by_annotator(usable: list[tuple[str, Any]]) -> dict[Any, tuple[str, Any]]:
    """Each annotator's most recently saved (label, annotation)."""
    latest: dict[Any, tuple[str, Any]] = {}
    for position, (label, annotation) in enumerate(usable):
        who = _annotator(annotation, position)
        if who not in latest or _recency(annotation) > _recency(latest[who][1]):
            latest[who] = (label, annotation)
    return latest


def _resolution(annotations: list[Any], schema: Any) -> tuple[str | None, bool, tuple[tuple[str, str], ...]]:
    """(label, whether the counted annotations disagreed, the votes when a vote decided) by the rule documented on
    `resolve`."""
    usable = _usable(annotations, schema)
    if not usable:
        return None, False, ()
    latest = _latest_by_annotator(usable)

    truth = [pair for pair in usable if field_of(pair[1], "ground_truth")]
    if truth:
        label = max(truth, key=lambda pair: _recency(pair[1]))[0]
        return label, any(other != label for other, _ in latest.values()), ()

    votes = Counter(label for label, _ in latest.values())
    top = max(votes.values())
    tied = [pair for pair in latest.values() if votes[pair[0]] == top]
    label = max(tied, key=lambda pair: _recency(pair[1]))[0]
    return label, len(votes) > 1, tuple((f"{kind}:{who}", vote) for (kind, who), (vote, _) in latest.items())


def resolve(annotations: list[dict], schema: Any) -> str | None:
    """The one label a task's annotations give it, None if no annotation is usable.

    Cancelled annotations are dropped, and so are annotations that name no label of the schema (empty result,
    another from_name or to_name, unknown choice, several different choices). A Choice's visible value counts as
    its alias. If a remaining annotation is ground truth, the most recently updated ground-truth one wins.
    Otherwise each annotator (completed_by) votes once, with their most recently updated annotation, and the
    majority wins; a tie goes to the most recently updated annotation among the tied labels.
    """
    return _resolution(annotations, schema)[0]


# ---------------------------------------------------------------- reading


def list_tasks(client: Any, project_id: int, doing: str, **params: Any) -> list[Any]:
    """All pages of a task list, each task once (a task can move between pages while they are read)."""
    seen: dict[int, Any] = {}
    with ls_client.calling(client, doing):
        for task in client.tasks.list(project=project_id, page_size=PAGE_SIZE, **params):
            seen.setdefault(task.id, task)
    return [seen[i] for i in sorted(seen)]


def _only(task_ids: Iterable[int]) -> str:
    items = [{"filter": "filter:tasks:id", "operator": "equal", "type": "Number", "value": int(i)} for i in task_ids]
    return json.dumps({"filters": {"conjunction": "or", "items": items}, "ordering": ["tasks:id"]})


def _gold_votes(task_id: int, annotations: list[Any], schema: Any, gold_label: str) -> list[GoldVote]:
    """Each annotator's latest usable answer on a gold task, the model's and cancelled ones left out."""
    people = [pair for pair in _usable(annotations, schema) if not model_labels.is_model_annotation(pair[1])]
    latest = _latest_by_annotator(people)
    votes = []
    for (kind, who), (label, annotation) in latest.items():
        stamp = _recency(annotation)[0]
        at = "" if stamp == _OLDEST else stamp.isoformat()
        votes.append(GoldVote(task_id, f"{kind}:{who}", label, gold_label, at))
    return votes


def fetch_labeled(
    client: Any,
    project_id: int,
    schema: Any,
    task_ids: Iterable[int] | None = None,
    *,
    gold_set: gold.GoldSet,
    gold_votes: list[GoldVote] | None = None,
) -> tuple[list[LabeledTask], FetchStats]:
    """Every annotated task of the project with its one resolved label, in task id order, minus gold and synthetic;
    with `task_ids`, only those tasks (a task among them missing from the answer has no usable label now).
    `schema` may be a Config: each task then carries every question's label in `answers`, and is kept when any
    question has one (`label` is the first question's, None without it).

    Gold tasks (those whose text is in `gold_set`, the project's GOLD_FILE) are the yardstick and must never feed training; synthetic tasks (data or meta with a truthy
    "synthetic" key) were made up by us, not labeled by people. Both are counted in the stats and left out; with
    `gold_votes`, each annotator's answer on a gold task read is appended to it (the first question's).
    Raises LabelStudioUnavailable if Label Studio cannot be read.
    """
    ids = sorted(set(task_ids)) if task_ids is not None else None
    if ids == []:
        return [], FetchStats()
    questions = getattr(schema, "questions", (schema,))
    schema = questions[0]  # the text every question reads
    tasks = list_tasks(
        client,
        project_id,
        f"reading the annotated tasks of project {project_id}",
        fields="all",
        include=_INCLUDE,
        query=_ANNOTATED if ids is None else _only(ids),
    )
    stats = FetchStats()
    labeled: list[LabeledTask] = []
    for task in tasks:
        annotations = list(task.annotations or [])
        if not annotations:  # the filter should have left it out; not a task anyone worked on
            continue
        if any(isinstance(a, dict) and "result" not in a for a in annotations):
            # Silently calling every annotation unusable would starve training; better to say so.
            raise LabelStudioUnavailable(
                f"Label Studio at {ls_client.base_url(client)} sent task {task.id}'s annotations without their results "
                f"(include={_INCLUDE!r} no longer works as on 1.23.2)",
                status=200,
            )
        stats.tasks += 1
        data = task.data if isinstance(task.data, dict) else {}
        text = schema.text_of(data)
        if gold_set.is_gold(text):
            stats.gold += 1
            if gold_votes is not None:
                gold_votes.extend(_gold_votes(task.id, annotations, schema, gold_set.label_for(text) or ""))
            continue
        if is_synthetic(task):
            stats.synthetic += 1
            continue
        if not isinstance(text, str) or not text.strip():
            stats.unusable += 1
            continue
        annotations = [a for a in annotations if not model_labels.is_model_annotation(a)]
        if not annotations:
            stats.model += 1
            continue
        live = [a for a in annotations if not field_of(a, "was_cancelled")]
        if not live:
            stats.cancelled += 1
            continue
        label, conflict, votes = _resolution(live, schema)  # conflicts and votes are the first question's
        answers = {schema.from_name: label} if label is not None else {}
        for question in questions[1:]:
            other = _resolution(live, question)[0]
            if other is not None:
                answers[question.from_name] = other
        if not answers:
            stats.unusable += 1
            continue
        stats.conflicts += conflict
        labeled.append(
            LabeledTask(
                task_id=task.id,
                text=text,
                label=label,  # type: ignore[arg-type]  # None only for a Config
                annotations=len(live),
                votes=votes,
                answers=answers,
            )
        )
    return labeled, stats


def fetch_pool(client: Any, project_id: int, schema: Any) -> list[tuple[int, str]]:
    """(id, text) of every task in the project, in id order; tasks without a text the schema can read are left out.

    Raises LabelStudioUnavailable if Label Studio cannot be read.
    """
    tasks = list_tasks(client, project_id, f"reading the tasks of project {project_id}", include="id,data")
    pool = []
    for task in tasks:
        text = schema.text_of(task.data) if isinstance(task.data, dict) else None
        if isinstance(text, str):
            pool.append((task.id, text))
    return pool


# ---------------------------------------------------------------- writing


def _existing_ids(client: Any, project_id: int) -> set[int]:
    tasks = list_tasks(client, project_id, f"reading the task ids of project {project_id}", include="id")
    return {task.id for task in tasks}


def push_predictions(
    client: Any,
    project_id: int,
    predictions: list[dict],
    chunk: int = 500,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write predictions ({"task", "result", "score", "model_version"}) to the project; the number written.

    Sent through the bulk import (POST /api/projects/{id}/import/predictions), `chunk` per request, calling
    progress(done, total) after each. Each request costs about 0.4 s however small, plus ~0.4 ms a prediction.
    Measured on this 2-core machine, Label Studio 1.23.2 with SQLite, 1,000 predictions into a 1,000-task
    project: 0.8-1.0 s with chunk=1000, 1.1-1.5 s with chunk=500, 2-2.6 s with chunk=250, 4-6 s with chunk=100
    (the same in a 5,000-task project; 5,000 in one request: 3.3 s). Plain `requests` instead of the SDK is no
    faster, and one predictions.create per task is the slow route these replace.

    Label Studio adds predictions, it never replaces them, so pushing twice keeps both. Predictions whose result
    does not fit the labeling config are dropped by Label Studio and not counted. Predictions for tasks deleted
    since they were made are left out. Raises LabelStudioUnavailable if a chunk cannot be written; the chunks
    before it stay written.
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    total = len(predictions)
    written = done = 0
    existing: set[int] | None = None
    for start in range(0, total, chunk):
        batch = predictions[start : start + chunk]
        try:
            written += _import(client, project_id, batch)
        except LabelStudioUnavailable as e:
            # One task deleted since predicting makes Label Studio refuse the whole request: drop such tasks
            # and send the rest once more.
            if e.status != 400:
                raise
            if existing is None:
                existing = _existing_ids(client, project_id)
            kept = [p for p in batch if p.get("task") in existing]
            if len(kept) == len(batch):
                raise
            log.warning("project %s: %d predictions name deleted tasks; left out", project_id, len(batch) - len(kept))
            if kept:
                written += _import(client, project_id, kept)
        done += len(batch)
        if progress:
            progress(done, total)
    if written < total:
        log.warning("project %s: Label Studio wrote %d of %d predictions", project_id, written, total)
    return written


def publish(
    client: Any,
    project_id: int,
    predictions: list[dict],
    version: str,
    chunk: int = 500,
    progress: Callable[[int, int], None] | None = None,
    step: Callable[[str], AbstractContextManager[object]] | None = None,
) -> int:
    """Write a whole prediction set of `version`, then point the project at it; the number written.

    The project is switched only when every task still in the project got its prediction: a version with gaps
    would send /next to tasks without one last, and one with none to random. Raises LabelStudioUnavailable
    (the project stays on its old version) if the set is incomplete or Label Studio fails. `step("write")` and
    `step("switch")` enclose the two steps, for a caller that times them.
    """
    step = step or (lambda _name: nullcontext())
    with step("write"):
        written = push_predictions(client, project_id, predictions, chunk, progress)
        if written < len(predictions):
            existing = _existing_ids(client, project_id)
            expected = sum(1 for p in predictions if p.get("task") in existing)
            if written < expected:
                raise LabelStudioUnavailable(
                    f"Label Studio wrote {written} of {expected} predictions of {version!r} into project "
                    f"{project_id}; the project stays on its current version"
                )
    with step("switch"):
        set_model_version(client, project_id, version)
    return written


def _import(client: Any, project_id: int, batch: list[dict]) -> int:
    with ls_client.calling(client, f"importing {len(batch)} predictions into project {project_id}"):
        # No SDK retries: the import is not idempotent, and a retry after a lost answer would write twice.
        answer = client.projects.import_predictions(
            id=project_id, request=batch, request_options={"max_retries": 0, "timeout_in_seconds": 300}
        )
    return int(getattr(answer, "created", 0) or 0)


def set_model_version(client: Any, project_id: int, version: str) -> None:
    """Make `version` the project's model version, which uncertainty sampling ranks tasks by.

    Label Studio accepts a version only once a prediction in the project carries it (else HTTP 400), so push
    predictions first. Raises LabelStudioUnavailable if it refuses or cannot be reached.
    """
    try:
        with ls_client.calling(client, f"setting project {project_id}'s model version to {version!r}"):
            client.projects.update(id=project_id, model_version=version)
    except LabelStudioUnavailable as e:
        if e.status == 400:
            raise LabelStudioUnavailable(f"{e} (it accepts a version only once a prediction carries it)", 400) from None
        raise


def model_versions(client: Any, project_id: int) -> dict[str, int]:
    """How many predictions each model version holds in the project."""
    answer = ls_client.request(
        client,
        "GET",
        f"api/projects/{project_id}/model-versions/",
        f"listing the model versions of project {project_id}",
    )
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LabelStudioUnavailable(
            f"Label Studio at {ls_client.base_url(client)} listed model versions in an unknown shape",
            status=answer.status_code,
        )
    return {str(k): int(v) for k, v in body.items() if isinstance(v, int)}


def delete_model_version(client: Any, project_id: int, version: str) -> None:
    """Delete every prediction of `version` in the project (never the version the project points at: see above)."""
    # Label Studio deletes one prediction at a time: 2-3 minutes for 10,000 on SQLite. A client that gave up would
    # not stop it, and a retry would queue behind it, so one long wait and no retry.
    ls_client.request(
        client,
        "DELETE",
        f"api/projects/{project_id}/model-versions/",
        f"deleting model version {version!r} of project {project_id}",
        json={"model_version": version},
        request_options={"timeout_in_seconds": 1800, "max_retries": 0},
    )
