"""Hostile input: generated requests to /setup, /predict and /webhook must never get a 5xx or a traceback.

Hypothesis builds bodies that are mostly shaped like Label Studio's (so they reach deep into the handlers) with
any JSON in any slot, plus raw bytes under any content type: 150 per test here, about 600 requests on the tiny model;
tests/integration/test_fuzz_long.py runs the same four tests at 600 each (about 2,400 requests).
Bodies nested thousands of levels deep, which Python's JSON parser and encoder cannot walk, are tried in every slot.
"""

from __future__ import annotations

import json

import pytest
from helpers import CONFIG
from hypothesis import given
from support.fuzz import (
    FUZZ,
    PREDICT_BODIES,
    RAW_REQUESTS,
    SETUP_BODIES,
    WEBHOOK_BODIES,
    check,
    client,  # noqa: F401 (a fixture)
    post,
)

from backend.serving.app import MAX_JSON_DEPTH


@FUZZ
@given(body=SETUP_BODIES)
def test_setup(client, body):
    check(post(client, "/setup", body))


@FUZZ
@given(body=PREDICT_BODIES)
def test_predict(client, body):
    check(post(client, "/predict", body))


@FUZZ
@given(body=WEBHOOK_BODIES)
def test_webhook(client, body):
    check(post(client, "/webhook", body))


@FUZZ
@given(**RAW_REQUESTS)
def test_raw_requests(client, path, method, content_type, data, query):
    check(client.open(path, method=method, data=data, content_type=content_type or None, query_string=query))


# Where a nest can hide in each route's body: the body itself (None), a top-level key, or a path below one.
SLOTS = {
    "/setup": [None, ("project",), ("schema",), ("extra_params",), ("extra_params", "strategy"), ("unknown",)],
    "/predict": [
        None,
        ("tasks",),
        ("tasks", 0),
        ("tasks", 0, "id"),
        ("tasks", 0, "data"),
        ("tasks", 0, "data", "text"),
        ("label_config",),
        ("project",),
        ("params", "context"),
    ],
    "/webhook": [
        None,
        ("action",),
        ("project",),
        ("project", "id"),
        ("annotation",),
        ("annotation", "result"),
        ("task",),
        ("task", "data"),
        ("annotations",),
    ],
}
BASES = {
    "/setup": {"project": "1.1", "schema": CONFIG, "extra_params": {"strategy": "margin"}},
    "/predict": {
        "tasks": [{"id": 1, "data": {"text": "Fine."}}],
        "project": "1.1",
        "label_config": CONFIG,
        "params": {"context": None},
    },
    "/webhook": {
        "action": "ANNOTATION_CREATED",
        "project": {"id": 1},
        "annotation": {"id": 2, "result": []},
        "task": {"id": 1, "data": {"text": "Fine."}},
        "annotations": [{"id": 2}],
    },
}
DEPTHS = [MAX_JSON_DEPTH + 1, 999, 5000, 100_000]


def nested_json(depth: int, kind: str) -> str:
    """JSON text nesting `depth` lists, objects, or both in turn; written as text, as json.dumps would recurse."""
    opens = ["[" if kind == "list" or (kind == "mixed" and i % 2) else '{"k": ' for i in range(depth)]
    return "".join(opens) + "1" + "".join("]" if o == "[" else "}" for o in reversed(opens))


def body_with(route: str, slot: tuple | None, nest: str) -> str:
    if slot is None:
        return nest
    body = json.loads(json.dumps(BASES[route]))
    parent = body
    for key in slot[:-1]:
        parent = parent[key]
    parent[slot[-1]] = "\x00NEST\x00"
    return json.dumps(body).replace(json.dumps("\x00NEST\x00"), nest)


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("kind", ["list", "dict", "mixed"])
@pytest.mark.parametrize("route, slot", [(r, s) for r, slots in SLOTS.items() for s in slots])
def test_deep_nesting_in_any_slot_is_a_400(client, route, slot, kind, depth):
    answer = client.post(route, data=body_with(route, slot, nested_json(depth, kind)), content_type="application/json")
    check(answer)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]
    assert f"more than {MAX_JSON_DEPTH} levels deep" in answer.get_json()["error"]


@pytest.mark.parametrize("route", list(SLOTS))
@pytest.mark.parametrize("body", ["0", "1.5", "true", "null", '"text"'])
def test_a_bare_json_value_is_a_400(client, route, body):
    # Found by test_raw_requests: a number reached the nesting check, which iterated it, and gave a 500.
    answer = client.post(route, data=body, content_type="application/json")
    check(answer)
    assert answer.status_code == 400, answer.get_data(as_text=True)[:300]


@pytest.mark.parametrize("route, slot", [(r, s) for r, slots in SLOTS.items() for s in slots if s])
def test_nesting_up_to_the_limit_is_handled_as_usual(client, route, slot):
    # One level short of the limit with the slot's own depth: the handlers see it, and must still answer cleanly.
    depth = MAX_JSON_DEPTH - len(slot) - 1
    answer = client.post(
        route, data=body_with(route, slot, nested_json(depth, "mixed")), content_type="application/json"
    )
    check(answer)
    assert "levels deep" not in (answer.get_json(silent=True) or {}).get("error", "")
