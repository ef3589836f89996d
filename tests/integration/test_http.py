"""The backend as users run it: real gunicorn on 127.0.0.1, a model directory given by LLM_MODEL."""

import json

import pytest
import requests
from helpers import CONFIG, gunicorn

from backend.dev import tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model.save(tmp_path_factory.mktemp("model") / "tiny-qwen2")


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    env = {
        "LLM_MODEL": str(model_dir),
        "DATA_DIR": str(tmp / "data"),
        "CALIBRATION": "contextual",
        "MAX_REQUEST_MB": "1",
    }
    with gunicorn(env, tmp / "gunicorn.log") as (url, proc):
        yield url, tmp / "gunicorn.log"


def test_protocol_over_gunicorn(server):
    url, _ = server
    version = requests.post(f"{url}/setup", json={"project": "1.1", "schema": CONFIG}).json()["model_version"]
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(["I loved it", "Awful", "It is 90 minutes long"])]
    r = requests.post(f"{url}/predict", json={"tasks": tasks, "project": "1.1", "label_config": CONFIG})
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["model_version"] for x in results] == [version] * 3
    assert requests.get(f"{url}/versions").json()["versions"] == [version]
    assert "backend_predictions_total 3.0" in requests.get(f"{url}/metrics").text


BAD = [
    (b"{not json", 400),
    (json.dumps({"tasks": {"a": 1}, "label_config": CONFIG}).encode(), 400),
    (json.dumps({"label_config": CONFIG}).encode(), 400),
    (
        json.dumps(
            {"tasks": [{"data": {"text": "x"}}], "label_config": "<View><Text name='t' value='$x'/></View>"}
        ).encode(),
        422,
    ),
    (json.dumps({"tasks": [{"data": {"text": "x" * (2 << 20)}}], "label_config": CONFIG}).encode(), 413),
    (json.dumps({"tasks": [None, 3, [], {"data": None}], "label_config": CONFIG}).encode(), 200),
]


@pytest.mark.parametrize("body, status", BAD)
def test_bad_input_never_500_never_traceback(server, body, status):
    url, log = server
    r = requests.post(f"{url}/predict", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status
    assert "Traceback" not in r.text and "error" in r.json() or r.status_code == 200
    if status == 200:
        assert len(r.json()["results"]) == 4 and len(r.json()["skipped"]) == 4


def test_setup_and_webhook_bad_input(server):
    url, _ = server
    assert requests.post(f"{url}/setup", json={"schema": "<View/>"}).status_code == 422
    assert requests.post(f"{url}/setup", data="x", headers={"Content-Type": "application/json"}).status_code == 400
    assert requests.post(f"{url}/webhook", json={"action": 5}).status_code == 400
    r = requests.post(f"{url}/webhook", json={"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    assert r.status_code == 400 and "must name its project" in r.json()["error"]
    r = requests.post(f"{url}/webhook", json={"action": "ANNOTATION_CREATED", "annotation": {"id": 1, "project": 4}})
    assert r.status_code == 200 and r.json()["training"].startswith("disabled")


def test_model_version_is_deterministic_and_follows_the_guidelines(model_dir, tmp_path):
    env = {"LLM_MODEL": str(model_dir), "DATA_DIR": str(tmp_path / "d"), "CALIBRATION": "contextual"}
    versions = []
    for _ in range(2):
        with gunicorn(env, tmp_path / "a.log") as (url, _p):
            versions.append(requests.get(f"{url}/versions").json()["versions"])
    assert versions[0] == versions[1] and versions[0]  # a restart keeps the version
    changed = tmp_path / "g.md"
    from backend.guidelines import DEFAULT_GUIDELINES

    changed.write_text(DEFAULT_GUIDELINES.read_text().replace("version: 1.0.0", "version: 1.0.1"))
    with gunicorn({**env, "GUIDELINES": str(changed)}, tmp_path / "b.log") as (url, _p):
        assert requests.get(f"{url}/versions").json()["versions"] != versions[0]
    with gunicorn({**env, "CALIBRATION": "none"}, tmp_path / "c.log") as (url, _p):
        assert requests.get(f"{url}/versions").json()["versions"] != versions[0]


def test_bad_settings_stop_the_server_with_one_line(model_dir, tmp_path):
    with pytest.raises(RuntimeError, match="BATCH_SIZE"):
        with gunicorn({"LLM_MODEL": str(model_dir), "BATCH_SIZE": "many"}, tmp_path / "s.log", wait=30):
            pass
