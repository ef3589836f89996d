"""Fields of Label Studio tasks and annotations, read the same way by every reader (exports, the API, reports).

Label Studio writes these fields in several shapes (JSON numbers, CSV strings, SDK objects), and a task or an
annotation read two ways must not count differently in two reports.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

AnnotatorId = int | str


def truthy(value: Any) -> bool:
    """A flag as Label Studio's exports write it: true, "true", "1", "yes", 1."""
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes"}
    return bool(value) if isinstance(value, (bool, int, float)) else False


def field_of(item: Any, name: str) -> Any:
    """A field of a task or an annotation, None if it has none: a key of a dict (exports, task lists' nested
    annotations) or an attribute of an SDK object (tasks, annotations.get/create)."""
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


def is_synthetic(task: Any) -> bool:
    """Whether a task (a dict from an export, or the SDK's task object) is a synthetic example: data.synthetic or
    meta.synthetic is true."""

    def part(name: str) -> dict:
        value = field_of(task, name)
        return value if isinstance(value, dict) else {}

    return truthy(part("data").get("synthetic")) or truthy(part("meta").get("synthetic"))


def parse_time(value: Any) -> datetime | None:
    """An ISO timestamp (a string or a datetime) as an aware datetime; None if it is neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        # Naive and aware datetimes cannot be compared; Label Studio writes UTC either way.
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


def record_time(record: dict) -> datetime | None:
    """When an annotation (or an export row) was last changed: updated_at, else created_at."""
    return parse_time(record.get("updated_at") or record.get("created_at"))


def plain_id(value: Any) -> Any:
    """Ids read from CSV are strings: make "12" the same id as 12 from JSON."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def annotator_id(value: Any) -> AnnotatorId | None:
    if isinstance(value, dict):
        value = value.get("id") if value.get("id") is not None else value.get("email")
    if value is None or isinstance(value, bool):
        return None
    value = plain_id(value)
    if isinstance(value, int):
        return value
    value = str(value).strip()
    return value or None


def annotator_sort_key(annotator: AnnotatorId) -> tuple:
    return (0, annotator, "") if isinstance(annotator, int) else (1, 0, str(annotator))
