"""Reading a Label Studio export (JSON, JSON-MIN or CSV) into one label per annotator per task.

Every report on people's labels starts here (agreement, label issues): each annotator's latest non-cancelled
annotation on each task; predictions, the model's own labels (labelloop finish --apply) and synthetic tasks left
out and counted, with a note per count.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from backend.errors import LabelloopError
from backend.labelstudio import model_labels
from backend.labelstudio import schema as schemas
from backend.labelstudio.records import (
    AnnotatorId,
    annotator_id,
    annotator_sort_key,
    is_synthetic,
    plain_id,
    record_time,
    truthy,
)
from backend.labelstudio.schema import SET_SEPARATOR

# Code of "this annotator did not label this item" in the items × annotators matrix of label indices.
MISSING = -1

# JSON-MIN/CSV columns that describe the task or the annotation, so never hold the label.
META_COLUMNS = frozenset(
    {
        "id",
        "annotator",
        "annotation_id",
        "created_at",
        "updated_at",
        "lead_time",
        "was_cancelled",
        "ground_truth",
        "agreement",
        "synthetic",
        "meta",
        "inner_id",
        "project",
        "completed_by",
        "updated_by",
        "drafts",
        "predictions",
        "annotations",
        "total_annotations",
        "cancelled_annotations",
        "total_predictions",
        "file_upload",
        "storage_filename",
    }
)

COUNT_KEYS = (
    "tasks_in_export",
    "synthetic_tasks_excluded",
    "tasks_used",
    "single_annotator_tasks",
    "unlabeled_tasks",
    "annotations_used",
    "cancelled_annotations",
    "duplicate_annotations",
    "empty_annotations",
    "multi_choice_annotations",
    "out_of_config_labels",
    "annotations_without_annotator",
    "predictions_ignored",
    "model_annotations_excluded",
)


class ExportError(LabelloopError, ValueError):
    """A problem with the user's files (missing, not JSON, unknown layout, bad config): shown as one line."""

    http_status = 400


@dataclass
class Item:
    """One task that kept at least one label: annotator id → label."""

    task_id: Any
    text: str | None
    labels: dict[AnnotatorId, str]


@dataclass
class Dataset:
    items: list[Item]
    annotators: list[AnnotatorId]
    labels: list[str]
    counts: dict[str, int]
    out_of_config: dict[str, int]
    notes: list[str]
    source_format: str
    from_name: str | None
    multiple: bool = False  # a multi-label question: each label is the set chosen, as one string (Schema.key)

    def sets(self) -> np.ndarray:
        """Items × annotators matrix of the label sets chosen as bitmasks (bit j: self.labels[j]), MISSING where
        not labeled; 0 is the empty set (no label applies)."""
        bit = {label: 1 << j for j, label in enumerate(self.labels)}
        out = np.full((len(self.items), len(self.annotators)), MISSING, dtype=np.int64)
        for col, annotator in enumerate(self.annotators):
            for row, item in enumerate(self.items):
                if annotator in item.labels:
                    key = item.labels[annotator]
                    out[row, col] = sum(bit[label] for label in key.split(SET_SEPARATOR) if label)
        return out

    def codes(self) -> np.ndarray:
        """Items × annotators matrix of label indices (into self.labels), MISSING where not labeled."""
        label_index = {label: i for i, label in enumerate(self.labels)}
        codes = np.full((len(self.items), len(self.annotators)), MISSING, dtype=int)
        for col, annotator in enumerate(self.annotators):
            for row, item in enumerate(self.items):
                if annotator in item.labels:
                    codes[row, col] = label_index[item.labels[annotator]]
        return codes


# ---------------------------------------------------------------------------------------------------------------
# Reading exports


@dataclass
class _Vote:
    """One annotation reduced to what agreement needs."""

    annotator: AnnotatorId | None
    choices: list[str] | None  # None: the annotation has no region for the Choices tag
    when: datetime | None
    order: int
    cancelled: bool


@dataclass
class _Task:
    task_id: Any
    text: str | None
    synthetic: bool
    votes: list[_Vote]
    predictions: int = 0
    model_annotations: int = 0  # labels the model wrote (labelloop finish --apply): not an annotator's


def labels_from_config(path: str | Path, from_name: str | None = None) -> tuple[str, list[str]]:
    """The name of a <Choices> tag in a labeling config (from_name, else the first) and the labels it allows, read
    as the backend reads configs (backend/labelstudio/schema.py): a Choice's alias when it has one."""
    try:
        config = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ExportError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ExportError(f"config {path} is not UTF-8 text") from None
    try:
        name, labels = schemas.choices(config, from_name)
    except schemas.SchemaError as exc:
        raise ExportError(f"config {path}: {exc}") from None
    return name, list(labels)


def load_export(
    path: str | Path,
    *,
    from_name: str | None = None,
    labels: Sequence[str] | None = None,
    text_key: str | None = None,
    multiple: bool = False,
) -> Dataset:
    """Read a Label Studio export: CSV when the name ends in .csv, otherwise JSON (full export or JSON-MIN).

    from_name picks the Choices tag (JSON) or label column (JSON-MIN/CSV); labels are the allowed labels, others
    are counted as out of config and dropped. With `multiple`, the tag is multi-label: each annotation's label is
    the set it chose (possibly empty: no label applies). Raises ExportError for anything the user has to fix.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # Excel writes CSV with a byte-order mark
    except UnicodeDecodeError:
        raise ExportError(f"{path} is not UTF-8 text, so not a Label Studio export") from None
    allowed = list(dict.fromkeys(labels)) if labels else None

    if path.suffix.lower() == ".csv":
        rows = _read_csv(text, path)
        tasks, from_name = _tasks_from_rows(rows, from_name, allowed, text_key, path)
        return _build(tasks, allowed, "csv", from_name, multiple)

    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "a CSV export must be named *.csv"
        ) from None
    if _is_full_export(payload, path):
        tasks, from_name = _tasks_from_json(payload, from_name, text_key)
        return _build(tasks, allowed, "json", from_name, multiple)
    tasks, from_name = _tasks_from_rows(payload, from_name, allowed, text_key, path)
    return _build(tasks, allowed, "json-min", from_name, multiple)


def _is_full_export(payload: Any, path: Path) -> bool:
    """True for the full JSON export (tasks with data/annotations), False for JSON-MIN rows; else an error."""
    unknown = f"unknown format in {path}: expected a list of tasks (JSON export) or of rows (JSON-MIN export)"
    if not isinstance(payload, list) or not all(isinstance(entry, dict) for entry in payload):
        raise ExportError(unknown)
    if any("annotations" in entry or "data" in entry for entry in payload) or not payload:
        return True
    if all("id" in entry for entry in payload):
        return False
    raise ExportError(unknown)


def _read_csv(text: str, path: Path) -> list[dict]:
    csv.field_size_limit(2**31 - 1)  # long review texts overflow the 128 KiB default
    try:
        reader = csv.DictReader(text.splitlines(keepends=True))
        # An empty cell means "no value" in Label Studio's CSV, just as a missing key does in JSON-MIN.
        return [{key: value for key, value in row.items() if key is not None and value != ""} for row in reader]
    except csv.Error as exc:
        raise ExportError(f"{path} is not a readable CSV file ({exc})") from None


def _tasks_from_json(tasks: list[dict], from_name: str | None, text_key: str | None) -> tuple[list[_Task], str | None]:
    if from_name is None:
        from_name = first_choices_name(tasks)
    result = []
    for task in tasks:
        data = task.get("data")
        data = data if isinstance(data, dict) else {}
        votes, model = [], 0
        for order, annotation in enumerate(task.get("annotations") or []):
            if not isinstance(annotation, dict):
                continue
            if model_labels.is_model_annotation(annotation):
                model += 1
                continue
            votes.append(
                _Vote(
                    annotator=annotator_id(annotation.get("completed_by")),
                    choices=region_choices(annotation.get("result"), from_name),
                    when=record_time(annotation),
                    order=order,
                    cancelled=truthy(annotation.get("was_cancelled")),
                )
            )
        result.append(
            _Task(
                task_id=task.get("id"),
                text=_first_text(data, text_key),
                synthetic=is_synthetic(task),
                votes=votes,
                predictions=len(task.get("predictions") or []),
                model_annotations=model,
            )
        )
    return result, from_name


def first_choices_name(tasks: list[dict]) -> str | None:
    # One tag for the whole export: taking "the first region" per annotation would mix tags when result order varies.
    for task in tasks:
        for annotation in task.get("annotations") or []:
            for region in (annotation.get("result") if isinstance(annotation, dict) else None) or []:
                if _is_choices_region(region):
                    return region.get("from_name")
    return None


def _is_choices_region(region: Any) -> bool:
    if not isinstance(region, dict):
        return False
    value = region.get("value")
    return region.get("type") == "choices" or (isinstance(value, dict) and "choices" in value)


def region_choices(result: Any, from_name: str | None) -> list[str] | None:
    for region in result if isinstance(result, list) else []:
        if _is_choices_region(region) and region.get("from_name") == from_name:
            choices = (region.get("value") or {}).get("choices")
            if isinstance(choices, list):
                return [str(choice) for choice in choices]
    return None


def _tasks_from_rows(
    rows: list[dict], from_name: str | None, allowed: list[str] | None, text_key: str | None, path: Path
) -> tuple[list[_Task], str | None]:
    """Group JSON-MIN/CSV rows (one per annotation, or one per task without annotations) by task id."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if rows and "id" not in columns:
        raise ExportError(f"unknown format in {path}: no 'id' column, so not a Label Studio JSON-MIN/CSV export")
    if not rows:
        return [], from_name
    if from_name is None:
        from_name = _guess_label_column(rows, columns, allowed, text_key, path)
    elif from_name not in columns:
        raise ExportError(f"{path} has no column '{from_name}' (columns: {', '.join(columns)})")

    tasks: dict[Any, _Task] = {}
    for order, row in enumerate(rows):
        task_id = plain_id(row.get("id"))
        task = tasks.get(task_id)
        if task is None:
            task = tasks[task_id] = _Task(
                task_id=task_id,
                text=_row_text(row, from_name, text_key),
                synthetic=truthy(row.get("synthetic")),
                votes=[],
            )
        if row.get("annotator") is None and row.get(from_name) is None:
            continue  # a task exported without any annotation
        task.votes.append(
            _Vote(
                annotator=annotator_id(row.get("annotator")),
                choices=_cell_choices(row.get(from_name)),
                when=record_time(row),
                order=order,
                cancelled=truthy(row.get("was_cancelled")),
            )
        )
    return list(tasks.values()), from_name


def _guess_label_column(
    rows: list[dict], columns: list[str], allowed: list[str] | None, text_key: str | None, path: Path
) -> str:
    candidates = [c for c in columns if c not in META_COLUMNS and c not in {text_key, "text"}]
    if allowed:

        def share_of_labels(column: str) -> tuple[int, int]:
            values = [v for v in (_cell_choices(row.get(column)) for row in rows) if v]
            return sum(all(c in allowed for c in v) for v in values), len(values)

        shares = {c: share_of_labels(c) for c in columns if c not in META_COLUMNS}
        only_labels = [c for c, (hits, total) in shares.items() if total and hits == total]
        if len(only_labels) == 1:
            return only_labels[0]
        # An out-of-config label spoils "all values are labels", so settle for the one column holding any label.
        some_labels = [c for c, (hits, _) in shares.items() if hits]
        if len(some_labels) == 1:
            return some_labels[0]
    if len(candidates) == 1:
        return candidates[0]
    raise ExportError(
        f"cannot tell which column of {path} holds the labels (candidates: {', '.join(candidates) or 'none'}); "
        "pass --from-name"
    )


def _cell_choices(value: Any) -> list[str] | None:
    """The choices in a JSON-MIN/CSV cell: "Positive", or {"choices": [...]} for a multiple-choice tag."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value)  # CSV exports write multiple choices as a JSON object
        except json.JSONDecodeError:
            return [value]
    if isinstance(value, dict):
        value = value.get("choices")
        return [str(v) for v in value] if isinstance(value, list) and value else None
    if isinstance(value, list):
        return [str(v) for v in value] or None
    return [str(value)]


def _row_text(row: dict, label_column: str, text_key: str | None) -> str | None:
    if text_key is not None:
        value = row.get(text_key)
        return None if value is None else str(value)
    data = {key: value for key, value in row.items() if key not in META_COLUMNS and key != label_column}
    return _first_text(data, None)


def _first_text(data: dict, text_key: str | None) -> str | None:
    if text_key is not None:
        value = data.get(text_key)
        return None if value is None else str(value)
    return next((value for value in data.values() if isinstance(value, str)), None)


def _is_newer(vote: _Vote, than: _Vote) -> bool:
    if vote.when is not None and than.when is not None and vote.when != than.when:
        return vote.when > than.when
    return vote.order > than.order


def _build(
    tasks: list[_Task], allowed: list[str] | None, source_format: str, from_name: str | None, multiple: bool = False
) -> Dataset:
    """Apply the counting rules shared by every format and keep the tasks with at least one label."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["tasks_in_export"] = len(tasks)
    out_of_config: Counter[str] = Counter()
    items = []
    for task in tasks:
        if task.synthetic:
            counts["synthetic_tasks_excluded"] += 1
            continue
        counts["predictions_ignored"] += task.predictions
        counts["model_annotations_excluded"] += task.model_annotations
        latest: dict[AnnotatorId, _Vote] = {}
        for vote in task.votes:
            if vote.cancelled:
                counts["cancelled_annotations"] += 1
            elif vote.annotator is None:
                counts["annotations_without_annotator"] += 1
            else:
                previous = latest.get(vote.annotator)
                if previous is not None:
                    counts["duplicate_annotations"] += 1
                if previous is None or _is_newer(vote, previous):
                    latest[vote.annotator] = vote
        labels: dict[AnnotatorId, str] = {}
        for annotator, vote in latest.items():
            if multiple:
                chosen = vote.choices or []  # no region: the annotator chose no label, an answer of its own
                for label in chosen:
                    if allowed is not None and label not in allowed:
                        counts["out_of_config_labels"] += 1
                        out_of_config[label] += 1
                kept = [label for label in chosen if allowed is None or label in allowed]
                order = allowed or sorted(set(kept))
                labels[annotator] = SET_SEPARATOR.join(label for label in order if label in kept)
                continue
            if not vote.choices:
                counts["empty_annotations"] += 1
            elif len(vote.choices) > 1:
                counts["multi_choice_annotations"] += 1
            elif allowed is not None and vote.choices[0] not in allowed:
                counts["out_of_config_labels"] += 1
                out_of_config[vote.choices[0]] += 1
            else:
                labels[annotator] = vote.choices[0]
        if not labels:
            counts["unlabeled_tasks"] += 1
            continue
        if len(labels) == 1:
            counts["single_annotator_tasks"] += 1
        counts["annotations_used"] += len(labels)
        items.append(Item(task.task_id, task.text, labels))
    counts["tasks_used"] = len(items)

    annotators = sorted({a for item in items for a in item.labels}, key=annotator_sort_key)
    used = {v for item in items for v in item.labels.values()}
    if multiple:
        used = {label for key in used for label in key.split(SET_SEPARATOR) if label}
    label_list = allowed if allowed is not None else sorted(used)
    notes = _count_notes(counts, out_of_config)
    return Dataset(
        items, annotators, list(label_list), counts, dict(out_of_config), notes, source_format, from_name, multiple
    )


def _count_notes(counts: dict[str, int], out_of_config: Counter[str]) -> list[str]:
    notes = []
    if counts["synthetic_tasks_excluded"]:
        notes.append(f"{counts['synthetic_tasks_excluded']} synthetic task(s) excluded: they are not real data")
    if counts["predictions_ignored"]:
        notes.append(f"{counts['predictions_ignored']} prediction(s) ignored: models are not annotators")
    if counts["model_annotations_excluded"]:
        notes.append(
            f"{counts['model_annotations_excluded']} label(s) the model wrote (finish --apply) excluded: "
            "the model is not an annotator"
        )
    if counts["cancelled_annotations"]:
        notes.append(f"{counts['cancelled_annotations']} cancelled (skipped) annotation(s) ignored")
    if counts["duplicate_annotations"]:
        notes.append(
            f"{counts['duplicate_annotations']} older annotation(s) replaced by the same annotator's latest "
            "one on the same task"
        )
    if counts["out_of_config_labels"]:
        listed = ", ".join(f"{label!r} ×{n}" for label, n in sorted(out_of_config.items()))
        notes.append(f"{counts['out_of_config_labels']} label(s) outside the config dropped: {listed}")
    if counts["empty_annotations"]:
        notes.append(f"{counts['empty_annotations']} annotation(s) without a choice for the tag ignored")
    if counts["multi_choice_annotations"]:
        notes.append(
            f"{counts['multi_choice_annotations']} annotation(s) with several choices ignored: these "
            "statistics need one label per annotator"
        )
    if counts["annotations_without_annotator"]:
        notes.append(f"{counts['annotations_without_annotator']} annotation(s) without an annotator ignored")
    if counts["single_annotator_tasks"]:
        notes.append(
            f"{counts['single_annotator_tasks']} task(s) labeled by one annotator only: they count for "
            "nothing but the label totals"
        )
    if counts["unlabeled_tasks"]:
        notes.append(f"{counts['unlabeled_tasks']} task(s) without any usable label")
    return notes
