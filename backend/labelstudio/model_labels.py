"""Annotations the model wrote into Label Studio (labelloop finish --apply), and how every reader tells them apart.

The mark: each result item of a model label carries `meta.labelloop` equal to MARK_TEXT (mark_result). Label Studio
1.23.2 keeps a result item's keys as written, returns them in task lists and exports, and its editor keeps a
region's `meta` when a person saves the annotation. The mark rides in the result because the model's labels are
written in bulk (backend/loop/finish.py: a prediction set of their own, turned into annotations by Label Studio's
"Create Annotations From Predictions" action), which sets no other field we choose. A string, not the number: the
editor parses JSON in JavaScript, whose numbers hold 53 bits. Annotations written by earlier releases, one POST
each, carry `import_id` equal to MARK instead; both are read as the mark.

Rejected marks, and why: `parent_prediction` (the action links it) is set to NULL by Label Studio when the
prediction is deleted, and the set is deleted once its annotations exist (and deleting predictions is routine
housekeeping anyway), so the model's labels would turn into people's; a dedicated Label Studio user as
`completed_by` would need an account (a seat) in the user's organization; `unique_id` is write-only in the API;
`import_id` cannot be set through the bulk action.

The mark travels with Label Studio's JSON export and survives importing that export into another project (the
result is copied as it is), so readers of an export can apply `is_model_annotation` too.

A marked annotation a person has saved since (corrected it, or confirmed it with Update, or made it ground truth)
is theirs: its `updated_at` moved past its `created_at` (Label Studio sets both in the same save, well under a
millisecond apart) by more than EDIT_SLACK. Training reads it as a human label and --undo leaves it alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backend.labelstudio.records import field_of, parse_time

MARK = 373657031212861361  # int(sha256(b"labelloop: a label the model wrote").hexdigest()[:15], 16)
MARK_TEXT = str(MARK)
META_KEY = "labelloop"
EDIT_SLACK = timedelta(seconds=1)
# The annotation fields the checks below read (for a task list's `include`).
FIELDS = ("id", "result", "was_cancelled", "import_id", "created_at", "updated_at")


def is_marked(annotation: Any) -> bool:
    """Written by the model (whether or not a person has saved it since)."""
    mark = field_of(annotation, "import_id")
    if isinstance(mark, int) and not isinstance(mark, bool) and mark == MARK:
        return True  # written one POST at a time, by an earlier release
    result = field_of(annotation, "result")
    return isinstance(result, list) and any(
        isinstance(item, dict) and isinstance(item.get("meta"), dict) and item["meta"].get(META_KEY) == MARK_TEXT
        for item in result
    )


def edited(annotation: Any) -> bool:
    """Saved again after it was created: by a person, since nothing of ours ever updates an annotation."""
    created, updated = parse_time(field_of(annotation, "created_at")), parse_time(field_of(annotation, "updated_at"))
    # Without both times nothing says a person touched it: a model label stays the model's.
    return created is not None and updated is not None and updated - created > EDIT_SLACK


def is_model_annotation(annotation: Any) -> bool:
    """A label the model wrote and no person has saved since: never a human label, and --undo's to remove."""
    return is_marked(annotation) and not edited(annotation)


def mark_result(result: list[dict]) -> list[dict]:
    """A model label's result items, each carrying the mark in its meta."""
    return [{**item, "meta": {**(item.get("meta") or {}), META_KEY: MARK_TEXT}} for item in result]
