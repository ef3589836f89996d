"""The loop end to end: annotate in a real Label Studio → the backend retrains from its webhooks → the project's
model_version changes → /next serves the task the strategy ranks first. Real gunicorn, the real model."""

from __future__ import annotations

import labelstudio
import pytest
import requests
from conftest import on_both_databases
from helpers import ROOT, gunicorn, wait_for
from label_studio_sdk import LabelStudio

from backend import corpus
from backend.labelstudio import sync, task_files

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

N_TASKS, N_LABELED = 60, 42


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def label_studio(request):
    """Every test here runs on Label Studio with SQLite and with PostgreSQL."""
    return on_both_databases(request)


AUTH = ("labelstudio", "s3cret-e2e-pass")


@pytest.fixture(scope="module")
def training_backend(label_studio, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("loop-backend")
    env = {
        "DATA_DIR": str(tmp / "data"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.admin.token,
        "RANK_STRATEGY": "margin",
        # Uncalibrated, the 0.5B model almost never answers Neutral; a few labels let the blend learn it, so the
        # first retrain is promoted for a reason the test can rely on.
        "CALIBRATION": "none",
        # Behind basic auth, so the test also proves Label Studio's predict calls and webhooks get through.
        "BASIC_AUTH_USER": AUTH[0],
        "BASIC_AUTH_PASS": AUTH[1],
    }
    with gunicorn(env, tmp / "gunicorn.log", wait=180.0) as (url, _):
        yield url, tmp / "gunicorn.log"


def test_annotations_retrain_switch_the_version_and_reorder_next(label_studio, training_backend):
    backend_url, log_path = training_backend
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    config = ROOT / "label_config" / "sentiment.xml"
    project = sync.ensure_project(admin, "E2E loop", config, ROOT / "guidelines" / "sentiment.md").id
    df = corpus.stratified_split(corpus.load(), [N_TASKS], seed=11)[0].reset_index(drop=True)
    tasks = [{"data": {"text": t, task_files.HASH_KEY: task_files.task_hash({"text": t})}} for t in df["text"]]
    sync.import_tasks(admin, project, tasks, progress=False)
    assert requests.get(f"{backend_url}/versions", timeout=10).status_code == 401
    connected = sync.connect_backend(admin, project, backend_url, progress=False, strategy="margin", auth=AUTH)
    first_version = connected.model_version
    assert connected.predicted == N_TASKS and connected.tabs == ("Model queue",)
    assert admin.projects.get(id=project).model_version == first_version

    by_text = {t.data["text"]: t.id for t in admin.tasks.list(project=project, fields="all")}
    labeled = df.iloc[:N_LABELED]
    for text, label in zip(labeled["text"], labeled["label"]):
        admin.annotations.create(
            id=by_text[text],
            result=[{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}],
        )

    def settled():
        # Annotations arrive one by one, so several runs may be promoted in turn; wait for the last.
        answer = requests.get(f"{backend_url}/versions", params={"project": project}, timeout=10, auth=AUTH).json()
        return answer if answer.get("current") and not answer["busy"] else None

    versions = wait_for("a promoted model and an idle loop", settled)
    new_version = versions["current"]
    assert new_version != first_version and new_version.startswith(first_version)
    record = [v for v in versions["training"] if v["version"] == new_version][0]
    assert record["labels"] <= N_LABELED and record["cv_macro_f1"] > record["incumbent_macro_f1"]
    # The served kind: trained on the 0.5B's own hidden state (layer 15 of 24), not on sentence embeddings.
    assert record["features"] == "llm-layer-15", record

    # A re-score asked for while another ranked the same model publishes it again under a fresh name
    # (rescoring.fresh_name: "<version>+2"); either name is the new model's.
    def switched():
        name = admin.projects.get(id=project).model_version or ""
        return name if name == new_version or name.startswith(new_version + "+") else None

    published = wait_for("the project's model_version to switch", switched)

    # Every task carries a prediction from the new version; /next serves the unlabeled one it ranks first.
    scores = {}
    for task in admin.tasks.list(project=project, fields="all"):
        if task.total_annotations:
            continue
        mine = [p for p in task.predictions or [] if p.model_version == published]
        assert mine, f"task {task.id} has no prediction from {published}"
        scores[task.id] = mine[-1].score
    first = min(scores, key=scores.get)
    served = requests.get(
        f"{label_studio.url}/api/projects/{project}/next",
        headers={"Authorization": f"Token {label_studio.legacy_token}"},
        timeout=30,
    )
    assert served.status_code == 200, served.text
    assert served.json()["id"] == first
    # One prediction set of this backend per task: the connect-time set of the LLM went once the project switched.
    for task in admin.tasks.list(project=project, fields="all"):
        assert [p.model_version for p in task.predictions or []] == [published], task.id
    assert [v.data["title"] for v in admin.views.list(project=project)] == ["Model queue"]
    log_text = log_path.read_text()
    assert "Traceback" not in log_text and AUTH[1] not in log_text
    # Label Studio's own calls carried the credentials: predictions and every webhook got through.
    assert '"POST /webhook HTTP/1.1" 401' not in log_text and '"POST /predict HTTP/1.1" 401' not in log_text
