"""Test helpers shared by tests/unit/test_fuzz.py and the tiers that build on it."""

from __future__ import annotations

import json

import pytest
from helpers import CONFIG, tiny_predictor
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from backend.serving.app import create_app
from backend.serving.service import Service
from backend.settings import Settings

EXAMPLES = 150  # per test; tests/integration/test_fuzz_long.py runs 600
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False), st.text(max_size=40)
)


json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


configs = st.one_of(
    st.just(CONFIG),
    st.just(CONFIG.replace("Neutral", "")),
    st.just("<View><Text name='t' value='$x'/></View>"),
    st.text(max_size=80).map(lambda t: f"<View>{t}</View>"),
    json_values,
)


texts = st.one_of(st.text(max_size=300), st.text(alphabet="\x00\ud7ff\U0010ffff<>&\"'", max_size=30), json_values)


tasks = st.one_of(
    st.fixed_dictionaries({"id": json_values, "data": st.fixed_dictionaries({"text": texts})}),
    st.fixed_dictionaries({"data": st.dictionaries(st.text(max_size=8), texts, max_size=3)}),
    json_values,
)


projects = st.one_of(st.integers(-5, 10**12).map(str), st.from_regex(r"\A[0-9]{1,4}\.[0-9]{1,10}\Z"), json_values)


actions = st.one_of(
    st.sampled_from(
        [
            "ANNOTATION_CREATED",
            "ANNOTATION_UPDATED",
            "ANNOTATIONS_DELETED",
            "START_TRAINING",
            "PROJECT_UPDATED",
            "TASKS_CREATED",
        ]
    ),
    json_values,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    # Training points at a port nothing listens on: runs fail in the background, answers must not.
    service = Service(
        Settings(
            data_dir=tmp_path_factory.mktemp("fuzz"),
            label_studio_url="http://127.0.0.1:9",
            label_studio_api_key="k",
            ls_retries=0,
            max_tasks=40,
        ),
        loader=lambda s: tiny_predictor(),
    )
    service.start()
    service.predictor(wait=60)
    return create_app(service).test_client()


def check(answer) -> None:
    assert answer.status_code < 500, answer.get_data(as_text=True)[:300]
    text = answer.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text
    if answer.status_code >= 400:
        assert isinstance(answer.get_json(silent=True), dict) and answer.get_json()["error"]


def post(client, path: str, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


SETUP_BODIES = st.fixed_dictionaries(
    {"project": projects, "schema": configs},
    optional={"extra_params": st.one_of(json_values, st.fixed_dictionaries({"strategy": json_values}))},
)


PREDICT_BODIES = st.fixed_dictionaries(
    {"tasks": st.one_of(st.lists(tasks, max_size=6), json_values)},
    optional={"project": projects, "label_config": configs, "params": json_values},
)


WEBHOOK_BODIES = st.fixed_dictionaries(
    {"action": actions},
    optional={
        "project": st.one_of(projects, st.fixed_dictionaries({"id": json_values})),
        "annotation": json_values,
        "task": json_values,
        "annotations": json_values,
    },
)


RAW_REQUESTS = {
    "path": st.sampled_from(["/setup", "/predict", "/webhook", "/versions", "/health", "/nope"]),
    "method": st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
    "content_type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
    "data": st.binary(max_size=200),
    "query": st.dictionaries(st.sampled_from(["project", "x"]), st.text(max_size=12), max_size=2),
}
