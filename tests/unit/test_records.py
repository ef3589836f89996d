"""backend/labelstudio/records.py: one reading of Label Studio's fields for every reader (exports, the API, reports)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

from backend.labelstudio import records


def test_flags_in_every_shape_label_studio_writes():
    assert all(records.truthy(v) for v in (True, 1, "true", "True ", "1", "yes"))
    assert not any(records.truthy(v) for v in (False, 0, "", "false", "no", None, [], {"x": 1}))


def test_a_field_reads_the_same_from_a_dict_and_an_sdk_object():
    # Annotations come as dicts inside task lists, as SDK objects from annotations.get/create.
    assert (
        records.field_of({"id": 3, "was_cancelled": False}, "id") == records.field_of(SimpleNamespace(id=3), "id") == 3
    )
    assert records.field_of({"id": 3}, "ground_truth") is None
    assert records.field_of(SimpleNamespace(id=3), "ground_truth") is None
    assert records.field_of({"was_cancelled": False}, "was_cancelled") is False


def test_synthetic_by_data_or_meta_for_export_dicts_and_sdk_tasks():
    # A task marked only in meta is synthetic for every reader (agreement, drift, training, finishing).
    assert records.is_synthetic({"data": {"text": "x"}, "meta": {"synthetic": True}})
    assert records.is_synthetic({"data": {"text": "x", "synthetic": "true"}})
    assert records.is_synthetic(SimpleNamespace(data={"text": "x"}, meta={"synthetic": 1}))
    assert records.is_synthetic(SimpleNamespace(data={"text": "x", "synthetic": True}, meta=None))
    assert not records.is_synthetic({"data": {"text": "x"}, "meta": {}})
    assert not records.is_synthetic(SimpleNamespace(data={"text": "x"}))
    assert not records.is_synthetic({"data": "not a dict", "meta": ["synthetic"]})


def test_times_are_aware_and_comparable():
    utc = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert records.parse_time("2026-01-02T03:04:05Z") == utc
    assert records.parse_time("2026-01-02T03:04:05.000000") == utc  # naive: Label Studio writes UTC
    assert records.parse_time(datetime(2026, 1, 2, 3, 4, 5)) == utc  # the SDK hands out datetimes
    assert records.parse_time("yesterday") is None and records.parse_time(None) is None
    assert records.record_time({"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T03:04:05Z"}) == utc
    assert records.record_time({"created_at": "2026-01-02T03:04:05Z"}) == utc


def test_annotator_ids_from_json_csv_and_objects_agree():
    assert records.annotator_id(12) == records.annotator_id("12") == records.annotator_id({"id": 12}) == 12
    assert records.annotator_id({"email": "a@x.org"}) == "a@x.org"
    assert records.annotator_id(None) is None and records.annotator_id(True) is None
    assert sorted([3, "b", 1, "a"], key=records.annotator_sort_key) == [1, 3, "a", "b"]
