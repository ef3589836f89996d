"""Inter-annotator agreement from a Label Studio export (JSON, JSON-MIN or CSV).

The export is reduced to one label per annotator per task (their latest non-cancelled annotation), then:

- Cohen's κ for every pair of annotators, on the items both labeled (scikit-learn);
- Fleiss' κ on the items every annotator labeled (statsmodels);
- Krippendorff's α, nominal, on all items with missing labels allowed (krippendorff);
- percent agreement and per-label specific agreement (defined in their docstrings);
- percentile bootstrap intervals that resample items, and the Landis & Koch band of each κ/α.

Predictions are not annotators and synthetic tasks are not real data: both are left out and counted.
scripts/agreement.py is the command-line front end.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as _statsmodels_fleiss_kappa

from backend.labelstudio import model_labels

AnnotatorId = int | str

# Code of "this annotator did not label this item" in the items × annotators matrix of label indices.
MISSING = -1

GATES = ("min-pairwise", "fleiss", "alpha")

# JSON-MIN/CSV columns that describe the task or the annotation, so never hold the label.
META_COLUMNS = frozenset({
    "id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time", "was_cancelled", "ground_truth",
    "agreement", "synthetic", "meta", "inner_id", "project", "completed_by", "updated_by", "drafts", "predictions",
    "annotations", "total_annotations", "cancelled_annotations", "total_predictions", "file_upload",
    "storage_filename",
})

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


class AgreementError(ValueError):
    """A problem with the user's files (missing, not JSON, unknown layout, bad config): shown as one line."""


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
    model_annotations: int = 0  # labels the model wrote (scripts/finish.py --apply): not an annotator's


def labels_from_config(path: str | Path, from_name: str | None = None) -> tuple[str, list[str]]:
    """The name of a <Choices> tag in a labeling config (from_name, else the first) and the labels it allows."""
    try:
        root = ET.fromstring(Path(path).read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise AgreementError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except (ET.ParseError, UnicodeDecodeError) as exc:
        raise AgreementError(f"config {path} is not valid XML ({exc})") from None
    tags = list(root.iter("Choices"))
    if not tags:
        raise AgreementError(f"config {path} has no <Choices> tag")
    if from_name is not None:
        tags = [tag for tag in tags if tag.get("name") == from_name]
        if not tags:
            names = ", ".join(str(t.get("name")) for t in root.iter("Choices"))
            raise AgreementError(f"config {path} has no <Choices name=\"{from_name}\"> (it has: {names})")
    tag = tags[0]
    # Label Studio stores a choice's alias in the result when it has one, so that is the label to expect.
    labels = [choice.get("alias") or choice.get("value") for choice in tag.iter("Choice")]
    labels = [label for label in labels if label]
    if not labels:
        raise AgreementError(f"config {path}: <Choices name=\"{tag.get('name')}\"> has no <Choice value=...>")
    return str(tag.get("name")), list(dict.fromkeys(labels))


def load_export(
    path: str | Path,
    *,
    from_name: str | None = None,
    labels: Sequence[str] | None = None,
    text_key: str | None = None,
) -> Dataset:
    """Read a Label Studio export: CSV when the name ends in .csv, otherwise JSON (full export or JSON-MIN).

    from_name picks the Choices tag (JSON) or label column (JSON-MIN/CSV); labels are the allowed labels, others
    are counted as out of config and dropped. Raises AgreementError for anything the user has to fix.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AgreementError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # Excel writes CSV with a byte-order mark
    except UnicodeDecodeError:
        raise AgreementError(f"{path} is not UTF-8 text, so not a Label Studio export") from None
    allowed = list(dict.fromkeys(labels)) if labels else None

    if path.suffix.lower() == ".csv":
        rows = _read_csv(text, path)
        tasks, from_name = _tasks_from_rows(rows, from_name, allowed, text_key, path)
        return _build(tasks, allowed, "csv", from_name)

    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AgreementError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "a CSV export must be named *.csv"
        ) from None
    if _is_full_export(payload, path):
        tasks, from_name = _tasks_from_json(payload, from_name, text_key)
        return _build(tasks, allowed, "json", from_name)
    tasks, from_name = _tasks_from_rows(payload, from_name, allowed, text_key, path)
    return _build(tasks, allowed, "json-min", from_name)


def _is_full_export(payload: Any, path: Path) -> bool:
    """True for the full JSON export (tasks with data/annotations), False for JSON-MIN rows; else an error."""
    unknown = f"unknown format in {path}: expected a list of tasks (JSON export) or of rows (JSON-MIN export)"
    if not isinstance(payload, list) or not all(isinstance(entry, dict) for entry in payload):
        raise AgreementError(unknown)
    if any("annotations" in entry or "data" in entry for entry in payload) or not payload:
        return True
    if all("id" in entry for entry in payload):
        return False
    raise AgreementError(unknown)


def _read_csv(text: str, path: Path) -> list[dict]:
    csv.field_size_limit(2**31 - 1)  # long review texts overflow the 128 KiB default
    try:
        reader = csv.DictReader(text.splitlines(keepends=True))
        # An empty cell means "no value" in Label Studio's CSV, just as a missing key does in JSON-MIN.
        return [{key: value for key, value in row.items() if key is not None and value != ""} for row in reader]
    except csv.Error as exc:
        raise AgreementError(f"{path} is not a readable CSV file ({exc})") from None


def _tasks_from_json(tasks: list[dict], from_name: str | None, text_key: str | None) -> tuple[list[_Task], str | None]:
    if from_name is None:
        from_name = _first_choices_name(tasks)
    result = []
    for task in tasks:
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
        votes, model = [], 0
        for order, annotation in enumerate(task.get("annotations") or []):
            if not isinstance(annotation, dict):
                continue
            if model_labels.is_model_annotation(annotation):
                model += 1
                continue
            votes.append(_Vote(
                annotator=_annotator_id(annotation.get("completed_by")),
                choices=_region_choices(annotation.get("result"), from_name),
                when=_timestamp(annotation),
                order=order,
                cancelled=bool(annotation.get("was_cancelled")),
            ))
        result.append(_Task(
            task_id=task.get("id"),
            text=_first_text(data, text_key),
            synthetic=truthy(data.get("synthetic")) or truthy(meta.get("synthetic")),
            votes=votes,
            predictions=len(task.get("predictions") or []),
            model_annotations=model,
        ))
    return result, from_name


def _first_choices_name(tasks: list[dict]) -> str | None:
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


def _region_choices(result: Any, from_name: str | None) -> list[str] | None:
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
        raise AgreementError(f"unknown format in {path}: no 'id' column, so not a Label Studio JSON-MIN/CSV export")
    if not rows:
        return [], from_name
    if from_name is None:
        from_name = _guess_label_column(rows, columns, allowed, text_key, path)
    elif from_name not in columns:
        raise AgreementError(f"{path} has no column '{from_name}' (columns: {', '.join(columns)})")

    tasks: dict[Any, _Task] = {}
    for order, row in enumerate(rows):
        task_id = _plain_id(row.get("id"))
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
        task.votes.append(_Vote(
            annotator=_annotator_id(row.get("annotator")),
            choices=_cell_choices(row.get(from_name)),
            when=_timestamp(row),
            order=order,
            cancelled=truthy(row.get("was_cancelled")),
        ))
    return list(tasks.values()), from_name


def _guess_label_column(
    rows: list[dict], columns: list[str], allowed: list[str] | None, text_key: str | None, path: Path
) -> str:
    candidates = [c for c in columns if c not in META_COLUMNS and c not in {text_key, "text"}]
    if allowed:
        def share_of_labels(column: str) -> tuple[int, int]:
            values = [_cell_choices(row.get(column)) for row in rows]
            values = [v for v in values if v]
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
    raise AgreementError(
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


def _plain_id(value: Any) -> Any:
    """Ids read from CSV are strings: make "12" the same id as 12 from JSON."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _annotator_id(value: Any) -> AnnotatorId | None:
    if isinstance(value, dict):
        value = value.get("id") if value.get("id") is not None else value.get("email")
    if value is None or isinstance(value, bool):
        return None
    value = _plain_id(value)
    if isinstance(value, int):
        return value
    value = str(value).strip()
    return value or None


def _timestamp(record: dict) -> datetime | None:
    value = record.get("updated_at") or record.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    # Naive and aware datetimes cannot be compared; Label Studio writes UTC either way.
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value) if isinstance(value, (bool, int, float)) else False


def _is_newer(vote: _Vote, than: _Vote) -> bool:
    if vote.when is not None and than.when is not None and vote.when != than.when:
        return vote.when > than.when
    return vote.order > than.order


def _annotator_sort_key(annotator: AnnotatorId) -> tuple:
    return (0, annotator, "") if isinstance(annotator, int) else (1, 0, str(annotator))


def _build(tasks: list[_Task], allowed: list[str] | None, source_format: str, from_name: str | None) -> Dataset:
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

    annotators = sorted({a for item in items for a in item.labels}, key=_annotator_sort_key)
    label_list = allowed if allowed is not None else sorted({v for item in items for v in item.labels.values()})
    notes = _count_notes(counts, out_of_config)
    return Dataset(items, annotators, list(label_list), counts, dict(out_of_config), notes, source_format, from_name)


def _count_notes(counts: dict[str, int], out_of_config: Counter[str]) -> list[str]:
    notes = []
    if counts["synthetic_tasks_excluded"]:
        notes.append(f"{counts['synthetic_tasks_excluded']} synthetic task(s) excluded: they are not real data")
    if counts["predictions_ignored"]:
        notes.append(f"{counts['predictions_ignored']} prediction(s) ignored: models are not annotators")
    if counts["model_annotations_excluded"]:
        notes.append(f"{counts['model_annotations_excluded']} label(s) the model wrote (finish --apply) excluded: "
                     "the model is not an annotator")
    if counts["cancelled_annotations"]:
        notes.append(f"{counts['cancelled_annotations']} cancelled (skipped) annotation(s) ignored")
    if counts["duplicate_annotations"]:
        notes.append(f"{counts['duplicate_annotations']} older annotation(s) replaced by the same annotator's latest "
                     "one on the same task")
    if counts["out_of_config_labels"]:
        listed = ", ".join(f"{label!r} ×{n}" for label, n in sorted(out_of_config.items()))
        notes.append(f"{counts['out_of_config_labels']} label(s) outside the config dropped: {listed}")
    if counts["empty_annotations"]:
        notes.append(f"{counts['empty_annotations']} annotation(s) without a choice for the tag ignored")
    if counts["multi_choice_annotations"]:
        notes.append(f"{counts['multi_choice_annotations']} annotation(s) with several choices ignored: these "
                     "statistics need one label per annotator")
    if counts["annotations_without_annotator"]:
        notes.append(f"{counts['annotations_without_annotator']} annotation(s) without an annotator ignored")
    if counts["single_annotator_tasks"]:
        notes.append(f"{counts['single_annotator_tasks']} task(s) labeled by one annotator only: they count for "
                     "nothing but the label totals")
    if counts["unlabeled_tasks"]:
        notes.append(f"{counts['unlabeled_tasks']} task(s) without any usable label")
    return notes


# ---------------------------------------------------------------------------------------------------------------
# Statistics. All take the items × annotators matrix of label indices (MISSING where not labeled) and return None
# where the statistic is undefined.


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's κ (scikit-learn) of two annotators over the items both labeled.

    None with fewer than 2 common items, or when κ is undefined (both gave the same single label throughout).
    """
    a, b = np.asarray(a), np.asarray(b)
    both = (a != MISSING) & (b != MISSING)
    if both.sum() < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns before returning nan for the constant case we report
        return _finite(cohen_kappa_score(a[both], b[both]))


def fleiss_kappa(codes: np.ndarray, n_labels: int) -> float | None:
    """Fleiss' κ (statsmodels) over the items that every annotator labeled; None with fewer than 2 annotators."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 2:
        return None
    complete = codes[(codes != MISSING).all(axis=1)]
    if len(complete) == 0:
        return None
    table, _ = aggregate_raters(complete, n_cat=n_labels)
    with np.errstate(all="ignore"):
        return _finite(_statsmodels_fleiss_kappa(table, method="fleiss"))


def krippendorff_alpha(codes: np.ndarray) -> float | None:
    """Krippendorff's α, nominal (krippendorff package), over all items with missing labels allowed."""
    codes = np.asarray(codes)
    if codes.size == 0:
        return None
    data = codes.T.astype(float)
    data[data == MISSING] = np.nan
    try:
        with np.errstate(all="ignore"):
            value = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    except ValueError:
        return None  # one label in the whole data, or no item with two labels
    return _finite(value)


def percent_agreement(codes: np.ndarray) -> float | None:
    """Share of items with at least 2 labels on which all annotators gave the same label (None if no such item)."""
    codes = np.asarray(codes)
    agree = _item_agreement(codes)
    agree = agree[~np.isnan(agree)]
    return float(agree.mean()) if len(agree) else None


def specific_agreement(codes: np.ndarray, n_labels: int) -> list[float | None]:
    """Per-label specific agreement, one value per label index.

    For label j, over items with at least 2 labels (n_ij annotators chose j out of m_i):
        sum n_ij (n_ij - 1) / sum n_ij (m_i - 1)
    i.e. of the pairwise judgements that involve j, the share where both chose j. With two annotators this is
    2·n_both / (n_a + n_b). None for a label never used on such an item.
    """
    counts = _value_counts(np.asarray(codes), n_labels)
    raters = counts.sum(axis=1)
    counts, raters = counts[raters >= 2], raters[raters >= 2]
    agreeing = (counts * (counts - 1)).sum(axis=0)
    possible = (counts * (raters[:, None] - 1)).sum(axis=0)
    return [float(a / p) if p else None for a, p in zip(agreeing, possible)]


def landis_koch(value: float | None) -> str | None:
    """Landis & Koch (1977) band: <0 poor, ≤0.20 slight, ≤0.40 fair, ≤0.60 moderate, ≤0.80 substantial, else
    almost perfect."""
    if value is None:
        return None
    value = round(value, 9)  # κ from counts lands a hair off a boundary (0.4 as 0.39999999999999997)
    if value < 0:
        return "poor"
    for upper, band in ((0.20, "slight"), (0.40, "fair"), (0.60, "moderate"), (0.80, "substantial")):
        if value <= upper:
            return band
    return "almost perfect"


def _value_counts(codes: np.ndarray, n_labels: int) -> np.ndarray:
    """Items × labels: how many annotators chose each label on each item."""
    counts = np.zeros((codes.shape[0], n_labels), dtype=int)
    for column in codes.T:
        rows = np.nonzero(column != MISSING)[0]
        counts[rows, column[rows]] += 1
    return counts


def _item_agreement(codes: np.ndarray) -> np.ndarray:
    """Per item: 1.0 if all its labels agree, 0.0 if not, nan with fewer than 2 labels."""
    labeled = codes != MISSING
    lowest = np.where(labeled, codes, np.iinfo(int).max).min(axis=1, initial=np.iinfo(int).max)
    highest = np.where(labeled, codes, MISSING).max(axis=1, initial=MISSING)
    return np.where(labeled.sum(axis=1) >= 2, (lowest == highest).astype(float), np.nan)


def _pair_columns(annotators: Sequence[AnnotatorId]) -> dict[str, tuple[int, int]]:
    """Pair key "A|B" → the pair's columns (i < j); A < B numerically when both are ints, else as strings."""
    pairs = {}
    for i, j in combinations(range(len(annotators)), 2):
        a, b = annotators[i], annotators[j]
        if not (a < b if isinstance(a, int) and isinstance(b, int) else str(a) < str(b)):
            a, b = b, a
        pairs[f"{a}|{b}"] = (i, j)
    return pairs


def point_statistics(codes: np.ndarray, n_labels: int) -> dict[str, Any]:
    """Every statistic on one matrix, by the libraries: {"cohen": {(i, j): κ}, "fleiss", "alpha", "percent"}."""
    codes = np.asarray(codes)
    return {
        "cohen": {(i, j): cohen_kappa(codes[:, i], codes[:, j]) for i, j in combinations(range(codes.shape[1]), 2)},
        "fleiss": fleiss_kappa(codes, n_labels),
        "alpha": krippendorff_alpha(codes),
        "percent": percent_agreement(codes),
    }


class _Resampler:
    """The statistics of point_statistics on resampled items (nan where undefined), from per-item tables built once.

    Calling the libraries on raw labels costs about 6 ms per resample with 3 annotators (scikit-learn validates
    its input on every call), so 1,000 resamples would take seconds; on these tables it is well under 1 ms.
    The libraries still do the arithmetic: statsmodels' κ from a confusion table, Fleiss' κ from the items ×
    labels table, and Krippendorff's α from value counts.
    """

    def __init__(self, codes: np.ndarray, n_labels: int):
        self.n_labels = n_labels
        self.counts = _value_counts(codes, n_labels)
        self.complete = (codes != MISSING).all(axis=1) if codes.shape[1] >= 2 else np.zeros(len(codes), bool)
        self.agree = _item_agreement(codes)
        # Each common item as one cell of the pair's confusion table; -1 where the pair did not both label it.
        self.cells = {}
        for i, j in combinations(range(codes.shape[1]), 2):
            both = (codes[:, i] != MISSING) & (codes[:, j] != MISSING)
            self.cells[(i, j)] = np.where(both, codes[:, i] * n_labels + codes[:, j], -1)

    def __call__(self, idx: np.ndarray) -> dict[str, Any]:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cohen = {pair: self._cohen(cells[idx]) for pair, cells in self.cells.items()}
            complete = self.counts[idx][self.complete[idx]]
            fleiss = _statsmodels_fleiss_kappa(complete, method="fleiss") if len(complete) else np.nan
            try:
                alpha = krippendorff.alpha(value_counts=self.counts[idx], level_of_measurement="nominal")
            except ValueError:
                alpha = np.nan
            agree = self.agree[idx]
            percent = np.nanmean(agree) if (~np.isnan(agree)).any() else np.nan
        return {"cohen": cohen, "fleiss": float(fleiss), "alpha": float(alpha), "percent": float(percent)}

    def _cohen(self, cells: np.ndarray) -> float:
        cells = cells[cells >= 0]
        if len(cells) < 2:
            return np.nan
        table = np.bincount(cells, minlength=self.n_labels**2).reshape(self.n_labels, self.n_labels)
        return float(cohens_kappa(table, return_results=False))


def bootstrap_intervals(
    codes: np.ndarray, n_labels: int, resamples: int = 1000, seed: int = 0, confidence: float = 0.95
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Percentile bootstrap intervals, resampling items with replacement (all statistics on the same resamples).

    Returns intervals shaped like point_statistics ([low, high], or None if never defined) and, in the same shape,
    how many resamples left each statistic undefined (those are left out of its interval).
    """
    codes = np.asarray(codes)
    resampler = _Resampler(codes, n_labels)
    rng = np.random.default_rng(seed)
    draws = [resampler(rng.integers(0, len(codes), len(codes))) for _ in range(resamples)]
    tail = 100 * (1 - confidence) / 2

    def summarise(values: list[float]) -> tuple[list[float] | None, int]:
        values = np.asarray(values)
        defined = values[np.isfinite(values)]
        if not len(defined):
            return None, len(values)
        low, high = np.percentile(defined, [tail, 100 - tail])
        return [float(low), float(high)], len(values) - len(defined)

    intervals: dict[str, Any] = {"cohen": {}}
    undefined: dict[str, Any] = {"cohen": {}}
    for pair in resampler.cells:
        intervals["cohen"][pair], undefined["cohen"][pair] = summarise([d["cohen"][pair] for d in draws])
    for name in ("fleiss", "alpha", "percent"):
        intervals[name], undefined[name] = summarise([d[name] for d in draws])
    return intervals, undefined


# ---------------------------------------------------------------------------------------------------------------
# The report


def analyse(dataset: Dataset, bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """All statistics of a dataset as one JSON-ready dict (the CLI's --format json output)."""
    codes = dataset.codes()
    n_labels = len(dataset.labels)
    names = [str(a) for a in dataset.annotators]
    pairs = _pair_columns(dataset.annotators)
    stats = point_statistics(codes, n_labels)
    notes = list(dataset.notes)

    cohen, cohen_n = {}, {}
    for key, (i, j) in pairs.items():
        cohen[key] = stats["cohen"][(i, j)]
        cohen_n[key] = int(((codes[:, i] != MISSING) & (codes[:, j] != MISSING)).sum())
        if cohen[key] is None:
            reason = "fewer than 2 items in common" if cohen_n[key] < 2 else "both gave one and the same label " \
                "throughout, so κ is undefined (scikit-learn returns nan)"
            notes.append(f"Cohen's κ for {key} is null: {reason}")

    labeled = codes != MISSING
    complete = int(labeled.all(axis=1).sum()) if len(names) >= 2 else 0
    pairable = int((labeled.sum(axis=1) >= 2).sum())
    if len(names) < 2:
        notes.append(f"{len(names)} annotator(s) only: pairwise and Fleiss' κ need two or more")
    elif stats["fleiss"] is None:
        notes.append("Fleiss' κ is null: " + ("no item was labeled by every annotator" if complete == 0 else
                                              "one and the same label on every item, so κ is undefined"))
    if stats["alpha"] is None:
        notes.append("Krippendorff's α is null: " + ("no item has two or more labels" if pairable == 0 else
                                                    "only one label is used, so α is undefined"))
    if stats["percent"] is None:
        notes.append("percent agreement is null: no item has two or more labels")

    intervals: dict[str, Any] = {"cohen": {}, "fleiss": None, "alpha": None, "percent": None}
    if bootstrap > 0 and len(codes):
        intervals, undefined = bootstrap_intervals(codes, n_labels, bootstrap, seed, confidence)
        partly = [(f"Cohen's κ for {key}", undefined["cohen"][columns]) for key, columns in pairs.items()]
        partly += [("Fleiss' κ", undefined["fleiss"]), ("Krippendorff's α", undefined["alpha"]),
                   ("percent agreement", undefined["percent"])]
        for name, count in partly:
            if 0 < count < bootstrap:
                notes.append(f"{name} was undefined in {count} of {bootstrap} resamples; its interval uses the others")

    def ci(value: float | None, interval: list[float] | None) -> list[float] | None:
        return interval if value is not None else None

    specific = specific_agreement(codes, n_labels)
    label_totals = _value_counts(codes, n_labels).sum(axis=0)
    return {
        "source": {"format": dataset.source_format, "from_name": dataset.from_name},
        "annotators": names,
        "labels": list(dataset.labels),
        "n_items": len(dataset.items),
        "cohen_kappa": cohen,
        "cohen_kappa_ci": {key: ci(cohen[key], intervals["cohen"].get(columns)) for key, columns in pairs.items()},
        "cohen_kappa_n": cohen_n,
        "fleiss_kappa": stats["fleiss"],
        "fleiss_kappa_ci": ci(stats["fleiss"], intervals["fleiss"]),
        "fleiss_n_items": complete,
        "krippendorff_alpha": stats["alpha"],
        "krippendorff_alpha_ci": ci(stats["alpha"], intervals["alpha"]),
        "krippendorff_n_items": pairable,
        "percent_agreement": stats["percent"],
        "percent_agreement_ci": ci(stats["percent"], intervals["percent"]),
        "percent_agreement_n_items": pairable,
        "per_label_agreement": dict(zip(dataset.labels, specific)),
        "label_totals": {label: int(n) for label, n in zip(dataset.labels, label_totals)},
        "bands": {
            "cohen_kappa": {key: landis_koch(value) for key, value in cohen.items()},
            "fleiss_kappa": landis_koch(stats["fleiss"]),
            "krippendorff_alpha": landis_koch(stats["alpha"]),
        },
        "bootstrap": {"resamples": bootstrap, "seed": seed, "confidence": confidence, "method": "percentile, items"},
        "counts": dict(dataset.counts),
        "out_of_config_labels": dict(dataset.out_of_config),
        "notes": notes,
    }


def check_gate(report: dict[str, Any], target: float, gate_on: str = "min-pairwise") -> tuple[bool, str]:
    """Whether the chosen statistic reaches the target, and one line saying so (or by how much it falls short).

    min-pairwise is the lowest Cohen's κ among the pairs where κ is defined; a null statistic fails.
    """
    if gate_on == "min-pairwise":
        defined = {pair: value for pair, value in report["cohen_kappa"].items() if value is not None}
        pair = min(defined, key=defined.__getitem__) if defined else None
        name = f"minimum pairwise Cohen's kappa ({pair})" if pair else "minimum pairwise Cohen's kappa"
        value = defined.get(pair) if pair else None
    elif gate_on == "fleiss":
        name, value = "Fleiss' kappa", report["fleiss_kappa"]
    elif gate_on == "alpha":
        name, value = "Krippendorff's alpha", report["krippendorff_alpha"]
    else:
        raise ValueError(f"unknown gate statistic {gate_on!r}; expected one of {', '.join(GATES)}")
    if value is None:
        return False, f"gate failed: {name} is null (undefined), target {target:.3f}"
    if round(value, 9) < target:
        return False, f"gate failed: {name} = {value:.3f} is {target - value:.3f} below the target {target:.3f}"
    return True, f"gate passed: {name} = {value:.3f} reaches the target {target:.3f}"


def write_disagreements(dataset: Dataset, path: str | Path) -> int:
    """Write every item with two or more labels that are not all the same, for adjudication; returns the row count.

    Columns: task_id, text, then one column per annotator (their label, empty if they did not label the item).
    """
    rows = [item for item in dataset.items if len(item.labels) >= 2 and len(set(item.labels.values())) > 1]
    try:
        with Path(path).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["task_id", "text", *(str(a) for a in dataset.annotators)])
            for item in rows:
                writer.writerow([item.task_id, item.text or "", *(item.labels.get(a, "") for a in dataset.annotators)])
    except OSError as exc:
        raise AgreementError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)


def format_table(report: dict[str, Any]) -> str:
    """The report as readable text: pairs, Fleiss, α, percent agreement, per-label agreement, counts, notes."""

    def num(value: float | None) -> str:
        # Adding 0.0 turns the -0.0 left by rounding a tiny negative float into 0.0, so it prints as 0.000.
        return "null" if value is None else f"{round(value, 3) + 0.0:.3f}"

    def interval(ci: list[float] | None) -> str:
        return "" if ci is None else f"[{num(ci[0])}, {num(ci[1])}]"

    boot = report["bootstrap"]
    ci_title = f"{boot['confidence']:.0%} CI" if boot["resamples"] else "CI (off)"
    lines = [
        f"Annotators: {', '.join(report['annotators']) or 'none'}   labels: {', '.join(report['labels']) or 'none'}",
        f"Items with at least one label: {report['n_items']}   (format {report['source']['format']}, "
        f"tag {report['source']['from_name']})",
        "",
        "Cohen's kappa per pair" + (f" (bootstrap, {boot['resamples']} resamples, seed {boot['seed']})"
                                    if boot["resamples"] else ""),
        f"  {'pair':<20} {'kappa':>7}  {ci_title:<18} {'n':>6}  band",
    ]
    for pair, value in report["cohen_kappa"].items():
        lines.append(f"  {pair:<20} {num(value):>7}  {interval(report['cohen_kappa_ci'][pair]):<18} "
                     f"{report['cohen_kappa_n'][pair]:>6}  {report['bands']['cohen_kappa'][pair] or '-'}")
    if not report["cohen_kappa"]:
        lines.append("  (no pairs)")
    lines += [
        "",
        f"  {'statistic':<34} {'value':>7}  {ci_title:<18} {'n':>6}  band",
        f"  {'Fleiss kappa (items all labeled)':<34} {num(report['fleiss_kappa']):>7}  "
        f"{interval(report['fleiss_kappa_ci']):<18} {report['fleiss_n_items']:>6}  "
        f"{report['bands']['fleiss_kappa'] or '-'}",
        f"  {'Krippendorff alpha (nominal)':<34} {num(report['krippendorff_alpha']):>7}  "
        f"{interval(report['krippendorff_alpha_ci']):<18} {report['krippendorff_n_items']:>6}  "
        f"{report['bands']['krippendorff_alpha'] or '-'}",
        f"  {'Percent agreement (all agree)':<34} {num(report['percent_agreement']):>7}  "
        f"{interval(report['percent_agreement_ci']):<18} {report['percent_agreement_n_items']:>6}",
        "",
        "Per-label specific agreement (share of pairwise judgements involving the label where both chose it)",
    ]
    for label, value in report["per_label_agreement"].items():
        lines.append(f"  {label:<20} {num(value):>7}   used {report['label_totals'][label]} time(s)")
    lines += ["", "Counts"]
    lines += [f"  {key.replace('_', ' '):<32} {value}" for key, value in report["counts"].items()]
    if report["notes"]:
        lines += ["", "Notes"] + [f"  - {note}" for note in report["notes"]]
    return "\n".join(lines)
