"""Both packaged models (Qwen2.5-Coder-0.5B- and 1.5B-Instruct), served by gunicorn as `make serve` does, on
obvious reviews."""

import pytest
import requests

from helpers import CONFIG, gunicorn

pytestmark = pytest.mark.real_model

OBVIOUS = {
    "I loved every minute of it": "Positive",
    "A dull, lifeless sequel": "Negative",
    "The film runs 118 minutes": "Neutral",
}


NAMES = {"embedded": "qwen2.5-coder-0.5b-instruct", "embedded-1.5b": "qwen2.5-coder-1.5b-instruct"}


@pytest.fixture(scope="module", params=list(NAMES))
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    # The first start of the 1.5B joins and converts its GGUF (about two minutes, once).
    with gunicorn({"DATA_DIR": str(tmp / "data"), "LLM_MODEL": request.param}, tmp / "gunicorn.log", wait=600) as (url, _):
        yield url, request.param


def test_obvious_reviews_with_fitted_calibration(server):
    server, model = server
    version = requests.post(f"{server}/setup", json={"project": "1.1", "schema": CONFIG}).json()["model_version"]
    assert version.startswith(NAMES[model])  # each packaged model is its own version
    assert "-fitted-" in version  # the calibration shipped in guidelines/calibration/ matches model and prompt
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(OBVIOUS)]
    results = requests.post(f"{server}/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=120).json()["results"]
    got = [r["result"][0]["value"]["choices"][0] for r in results]
    assert got == list(OBVIOUS.values())
    # The score is the task's priority (margin by default: 1 - the gap between the two best labels is the
    # uncertainty, so a confident answer scores high and is asked late); the ordering is tested in test_loop.py.
    assert all(0 <= r["score"] <= 1 for r in results)


def test_other_label_names_are_served_by_the_same_model(server):
    server, _ = server
    config = (
        '<View><Text name="body" value="$review"/><Choices name="verdict" toName="body">'
        '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
    )
    tasks = [{"data": {"review": "An absolute delight from start to finish."}}, {"data": {"review": "Painfully boring."}}]
    results = requests.post(f"{server}/predict", json={"tasks": tasks, "label_config": config}, timeout=120).json()["results"]
    assert [r["result"][0]["value"]["choices"][0] for r in results] == ["Positive", "Negative"]
    assert results[0]["result"][0]["from_name"] == "verdict"
