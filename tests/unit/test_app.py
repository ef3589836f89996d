"""The protocol through Flask's test client, on the tiny model: shapes, config-driven names, bad input."""

import base64
import json

import pytest
from helpers import CONFIG, tiny_predictor

from backend.labelstudio.schema import parse
from backend.serving.app import create_app
from backend.serving.service import Service
from backend.settings import Settings

OTHER = (
    '<View><Text name="body" value="$review"/><Choices name="mood" toName="body">'
    '<Choice value="Good"/><Choice value="Bad"/><Choice value="Meh"/></Choices></View>'
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("data"), max_tasks=50, max_request_mb=1)
    service = Service(settings, loader=lambda s: tiny_predictor())
    service.start()
    service.predictor(wait=60)
    app = create_app(service)
    return app.test_client()


def post(client, path, body):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json")


def test_health_setup_predict(client):
    assert client.get("/health").json["status"] == "UP"
    version = post(client, "/setup", {"project": "7.1700000000", "schema": OTHER}).json["model_version"]
    tasks = [{"id": i, "data": {"review": t}} for i, t in enumerate(["great", "awful film", "it exists"])]
    answer = post(client, "/predict", {"tasks": tasks, "project": "7.1700000000", "label_config": OTHER}).json
    assert len(answer["results"]) == 3
    for item in answer["results"]:
        (region,) = item["result"]
        assert (region["from_name"], region["to_name"], region["type"]) == ("mood", "body", "choices")
        assert region["value"]["choices"][0] in ("Good", "Bad", "Meh")
        assert 0 < item["score"] <= 1 and item["model_version"] == version
    assert version in client.get("/versions").json["versions"]


def test_predict_uses_the_config_from_setup_when_none_is_sent(client):
    post(client, "/setup", {"project": "9.1", "schema": OTHER})
    answer = post(client, "/predict", {"tasks": [{"data": {"review": "fine"}}], "project": "9.1"}).json
    assert answer["results"][0]["result"][0]["from_name"] == "mood"


def test_model_version_depends_on_the_labels(client):
    a = post(client, "/setup", {"schema": OTHER}).json["model_version"]
    b = post(client, "/setup", {"schema": CONFIG}).json["model_version"]
    assert a != b and a == post(client, "/setup", {"schema": OTHER}).json["model_version"]


@pytest.mark.parametrize(
    "body, status, message",
    [
        ("not json", 400, "must be JSON"),
        ([1, 2], 400, "JSON object"),
        ({"label_config": CONFIG}, 400, "'tasks' is missing"),
        ({"tasks": "x", "label_config": CONFIG}, 400, "must be a list"),
        ({"tasks": [{"data": {"text": "x"}}]}, 400, "'label_config' is missing"),
        ({"tasks": [{"data": {"text": "x"}}], "label_config": 5}, 400, "XML string"),
        ({"tasks": [{"data": {"text": "x"}}], "label_config": "<View/>"}, 422, "no <Text>"),
        ({"tasks": [{"data": {"text": "x"}}] * 51, "label_config": CONFIG}, 413, "limit is 50"),
    ],
)
def test_bad_predict_requests_get_a_json_4xx(client, body, status, message):
    r = post(client, "/predict", body)
    assert r.status_code == status
    assert message in r.json["error"]


def test_bad_tasks_are_skipped_with_a_reason_and_the_rest_predicted(client):
    tasks = [
        {"id": 1, "data": {"text": "lovely"}},
        {"id": 2, "data": {}},
        {"id": 3, "data": {"text": "   "}},
        {"id": 4, "data": {"text": 42}},
        "not a task",
        {"id": 6},
        {"id": 7, "data": {"text": "word " * 20000}},  # 100 KB
    ]
    answer = post(client, "/predict", {"tasks": tasks, "label_config": CONFIG}).json
    assert len(answer["results"]) == len(tasks)
    reasons = {s["index"]: s["reason"] for s in answer["skipped"]}
    assert set(reasons) == {1, 2, 3, 4, 5}
    assert "no 'text' field" in reasons[1] and "empty" in reasons[2] and "string" in reasons[3]
    assert answer["results"][1]["result"] == [] and answer["results"][0]["result"]
    assert answer["results"][6]["result"]  # long text is cut, not refused


DIALOGUE = (
    '<View><Paragraphs name="chat" value="$messages" layout="dialogue" nameKey="role" textKey="content"/>'
    '<Choices name="helpful" toName="chat" choice="single-radio"><Choice value="Yes"/><Choice value="No"/></Choices>'
    '<TextArea name="note" toName="chat"/></View>'
)
PAGE = (
    '<View><HyperText name="page" value="$html"/>'
    '<Choices name="topic" toName="page"><Choice value="Sport"/><Choice value="Politics"/></Choices></View>'
)


@pytest.mark.parametrize(
    "config, good, bad, shape",
    [
        (
            DIALOGUE,
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
            {"messages": "user: Hi"},
            "list of",
        ),
        (PAGE, {"html": "<h1>Cup final</h1><p>A late goal.</p>"}, {"html": {"p": "x"}}, "HTML string"),
    ],
)
def test_dialogues_and_html_are_predicted_and_wrong_shapes_skipped(client, config, good, bad, shape):
    answer = post(
        client, "/predict", {"tasks": [{"id": 1, "data": good}, {"id": 2, "data": bad}], "label_config": config}
    )
    assert answer.status_code == 200, answer.json
    (region,) = answer.json["results"][0]["result"]
    schema = parse(config)
    assert (region["from_name"], region["to_name"]) == (schema.from_name, schema.to_name)
    assert region["value"]["choices"][0] in schema.labels
    (skipped,) = answer.json["skipped"]
    assert skipped["index"] == 1 and shape in skipped["reason"]


@pytest.mark.parametrize("route", ["/setup", "/predict", "/webhook"])
def test_a_body_nested_thousands_deep_is_a_400(client, route):
    # The body: {"tasks": [[[[...]]]]} 5,000 levels deep, which Python's JSON parser cannot descend.
    r = post(client, route, '{"tasks": ' + "[" * 5000 + "]" * 5000 + "}")
    assert r.status_code == 400 and "levels deep" in r.json["error"]


def test_request_size_limit_is_413(client):
    r = post(client, "/predict", {"tasks": [{"data": {"text": "x" * (2 * 1024 * 1024)}}], "label_config": CONFIG})
    assert r.status_code == 413 and "MAX_REQUEST_MB" in r.json["error"]


def test_webhook_records_every_action(client):
    for action in ("ANNOTATION_CREATED", "PROJECT_UPDATED", "START_TRAINING"):
        r = post(
            client, "/webhook", {"action": action, "project": {"id": 3}, "annotation": {"id": 5}, "task": {"id": 8}}
        )
        if action == "START_TRAINING":  # asked for explicitly, and impossible without Label Studio's address
            assert r.status_code == 400 and "LABEL_STUDIO_URL" in r.json["error"]
        else:
            assert r.status_code == 200 and r.json["action"] == action
    assert "disabled" in post(client, "/webhook", {"action": "ANNOTATION_CREATED", "project": 3}).json["training"]
    assert post(client, "/webhook", {"no": "action"}).status_code == 400
    metrics = client.get("/metrics").data.decode()
    assert 'backend_webhook_events_total{action="START_TRAINING"} 1.0' in metrics


def test_metrics_are_prometheus_text(client):
    text = client.get("/metrics").data.decode()
    for name in (
        "backend_requests_total",
        "backend_request_seconds_bucket",
        "backend_predictions_total",
        "backend_model_version_info",
    ):
        assert name in text


def test_unknown_route_and_method_are_json(client):
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json
    assert client.get("/predict").status_code == 405


def test_loading_and_failed_model_answer_503():
    settings = Settings(model_wait_seconds=0)

    def broken(s):
        raise RuntimeError("weights missing")

    service = Service(settings, loader=broken)
    service.start()
    service._ready.wait(5)
    c = create_app(service).test_client()
    assert c.get("/health").status_code == 503 and "weights missing" in c.get("/health").json["error"]
    r = post(c, "/predict", {"tasks": [], "label_config": CONFIG})
    assert r.status_code == 503 and "weights missing" in r.json["error"]


def test_basic_auth_guards_every_route_but_health(tmp_path):
    settings = Settings(data_dir=tmp_path, basic_auth_user="ls", basic_auth_pass="p@ss wörd")
    assert "p@ss" not in repr(settings)
    service = Service(settings, loader=lambda s: tiny_predictor())
    service.start()
    service.predictor(wait=60)
    c = create_app(service).test_client()
    good = {"Authorization": "Basic " + base64.b64encode("ls:p@ss wörd".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ls:nope").decode()}
    assert c.get("/health").status_code == 200
    for path in ("/versions", "/metrics"):
        r = c.get(path)
        assert r.status_code == 401 and "authentication required" in r.json["error"]
        assert r.headers["WWW-Authenticate"].startswith("Basic")
        assert c.get(path, headers=wrong).status_code == 401
        assert c.get(path, headers={"Authorization": "Bearer x"}).status_code == 401
        assert c.get(path, headers=good).status_code == 200
    body = json.dumps({"tasks": [{"data": {"text": "great"}}], "label_config": CONFIG})
    assert c.post("/predict", data=body, content_type="application/json").status_code == 401
    assert c.post("/predict", data=body, content_type="application/json", headers=good).status_code == 200
    assert c.post("/webhook", data="{}", content_type="application/json").status_code == 401


def test_half_configured_auth_is_a_settings_error(monkeypatch):
    from backend.settings import SettingsError

    monkeypatch.setenv("BASIC_AUTH_USER", "ls")
    monkeypatch.delenv("BASIC_AUTH_PASS", raising=False)
    with pytest.raises(SettingsError, match="BASIC_AUTH_PASS"):
        Settings.from_env()


def test_consensus_setting(monkeypatch):
    from backend.settings import SettingsError

    monkeypatch.setenv("CONSENSUS", "CrowdLab")
    assert Settings.from_env().consensus == "crowdlab"
    monkeypatch.delenv("CONSENSUS")
    assert Settings.from_env().consensus == "majority"
    monkeypatch.setenv("CONSENSUS", "vote")
    with pytest.raises(SettingsError, match="CONSENSUS='vote': use majority or crowdlab"):
        Settings.from_env()


def test_a_project_key_that_is_not_an_id_names_no_directory(client, tmp_path):
    """The project key becomes a path under DATA_DIR: anything but Label Studio's numeric id is no project."""
    outside = tmp_path / "outside"
    for key in (str(outside), str(outside / "x.1"), "1/../../x", "²", True):
        answer = post(
            client,
            "/predict",
            {"tasks": [{"id": 1, "data": {"text": "Great film"}}], "project": key, "label_config": CONFIG},
        )
        assert answer.status_code == 200, answer.get_json()
        answer = post(client, "/setup", {"project": key, "schema": CONFIG, "extra_params": {"strategy": "entropy"}})
        assert answer.status_code == 400 and "per project" in answer.get_json()["error"]
    assert not outside.exists()
    from backend.loop.model_store import ModelStore

    with pytest.raises(ValueError, match="Label Studio id"):
        ModelStore(tmp_path, "../x")


def test_gold_file_setting(monkeypatch, tmp_path):
    from backend.paths import DEMO_GOLD
    from backend.settings import SettingsError

    monkeypatch.delenv("GOLD_FILE", raising=False)
    assert Settings.from_env().gold_file == DEMO_GOLD  # the demo's gold, as before the setting existed
    monkeypatch.setenv("GOLD_FILE", "none")
    assert Settings.from_env().gold_file is None
    own = tmp_path / "gold.jsonl"
    own.write_text('{"text": "a checked text", "label": "Spam"}\n')
    monkeypatch.setenv("GOLD_FILE", str(own))
    assert Settings.from_env().gold_file == own
    monkeypatch.setenv("GOLD_FILE", str(tmp_path / "missing.jsonl"))
    with pytest.raises(SettingsError, match="GOLD_FILE=.*missing.jsonl' is not a file"):
        Settings.from_env()
