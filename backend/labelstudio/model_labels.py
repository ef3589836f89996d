"""Annotations the model wrote into Label Studio (labelloop finish --apply), and how every reader tells them apart.

The mark: `import_id` equal to MARK. Label Studio 1.23.2 stores `import_id` with every annotation (an indexed
integer meant for "the annotation's id before an import"), accepts it when an annotation is created through the API
(`POST /api/tasks/<id>/annotations/`), returns it in task lists and exports, and never changes it afterwards; no
import gives it this value (imports copy small annotation ids). The annotations also carry last_action "prediction"
(Label Studio's own "Created from prediction"), for people reading them; only the mark is relied on.

Rejected marks, and why: `parent_prediction` (the Data Manager's predictions_to_annotations links it) is set to NULL
by Label Studio when the prediction is deleted, and deleting predictions is routine housekeeping, so the model's
labels would turn into people's; a dedicated Label Studio user as `completed_by` would need an account (a seat) in
the user's organization; `unique_id` is write-only in the API.

The mark travels with Label Studio's JSON export (annotations are exported with every field), so readers of an
export can apply `is_model_annotation` too. It does not survive importing that export into a project: Label Studio
then sets import_id to the exported annotation's id (and keeps only result, completed_by, ground_truth,
was_cancelled and lead_time); the finished dataset's file, which names each label's source, is the record there.

A marked annotation a person has saved since (corrected it, or confirmed it with Update, or made it ground truth)
is theirs: its `updated_at` moved past its `created_at` (Label Studio sets both in the same save, tens of
microseconds apart) by more than EDIT_SLACK. Training reads it as a human label and --undo leaves it alone.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backend.labelstudio.records import field_of, parse_time

MARK = 373657031212861361  # int(sha256(b"labelloop: a label the model wrote").hexdigest()[:15], 16)
LAST_ACTION = "prediction"
EDIT_SLACK = timedelta(seconds=1)
# The annotation fields the checks below read (for a task list's `include`).
FIELDS = ("id", "result", "was_cancelled", "import_id", "created_at", "updated_at")


def is_marked(annotation: Any) -> bool:
    """Written by the model (whether or not a person has saved it since)."""
    mark = field_of(annotation, "import_id")
    return isinstance(mark, int) and not isinstance(mark, bool) and mark == MARK


def edited(annotation: Any) -> bool:
    """Saved again after it was created: by a person, since nothing of ours ever updates an annotation."""
    created, updated = parse_time(field_of(annotation, "created_at")), parse_time(field_of(annotation, "updated_at"))
    # Without both times nothing says a person touched it: a model label stays the model's.
    return created is not None and updated is not None and updated - created > EDIT_SLACK


def is_model_annotation(annotation: Any) -> bool:
    """A label the model wrote and no person has saved since: never a human label, and --undo's to remove."""
    return is_marked(annotation) and not edited(annotation)


def mark_fields() -> dict:
    """The fields an annotation the model writes carries, besides its task and result."""
    return {"import_id": MARK, "last_action": LAST_ACTION}
