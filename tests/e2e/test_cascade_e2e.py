"""LLM_MODEL=cascade against a real Label Studio, the backend under real gunicorn as `make serve` starts it, with
two tiny models as the cascade's pair: at connect the first model's own answers are published for every task, then
the cascade's (the student's reading of its state, the second model's where unsure) replace them under a version
naming both models and the share."""

from __future__ import annotations

import json

import labelstudio
import pytest
import requests
from helpers import ROOT, gunicorn, wait_for
from label_studio_sdk import LabelStudio

from backend import corpus
from backend.dev import tiny_model
from backend.labelstudio import sync, task_files

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

CONFIG = ROOT / "label_config" / "sentiment.xml"
GUIDELINES = ROOT / "guidelines" / "sentiment.md"
TEXTS = list(corpus.load().sample(30, random_state=4)["text"])


@pytest.fixture(scope="module")
def cascade_backend(label_studio, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cascade-backend")
    pair = [tiny_model.save(tmp / f"tiny-{seed}", seed=seed) for seed in (0, 1)]
    env = {
        "DATA_DIR": str(tmp / "data"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.admin.token,
        "LLM_MODEL": "cascade",
        "LLM_CASCADE_MODELS": ",".join(map(str, pair)),
        "LLM_CASCADE_SHARE": "0.3",
    }
    with gunicorn(env, tmp / "gunicorn.log", wait=180.0) as (url, _):
        yield url, tmp / "data", tmp / "gunicorn.log"


def test_connect_publishes_the_first_models_answers_then_the_cascades(label_studio, cascade_backend):
    backend_url, data_dir, log_path = cascade_backend
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    project = sync.ensure_project(admin, "E2E cascade", CONFIG, GUIDELINES).id
    tasks = [{"data": {"text": t, task_files.HASH_KEY: task_files.task_hash({"text": t})}} for t in TEXTS]
    sync.import_tasks(admin, project, tasks, progress=False)
    sync.connect_backend(admin, project, backend_url, progress=False)

    def settled():
        answer = requests.get(f"{backend_url}/versions", params={"project": project}, timeout=10).json()
        version = admin.projects.get(id=project).model_version or ""
        return version if "-cascade30-" in version and not answer["busy"] else None

    version = wait_for("a cascade model_version and an idle loop", settled, timeout=300, every=2)
    assert version.startswith("tiny-0+tiny-1-cascade30-"), version
    for task in admin.tasks.list(project=project, fields="all"):
        # The cascade's set replaced the first model's: one prediction per task.
        assert [p.model_version for p in task.predictions or []] == [version], task.id

    registry = json.loads((data_dir / "projects" / str(project) / "registry.json").read_text())
    measured = registry["settings"]["pool_calibration"]
    assert measured["second"]["size"] == len(TEXTS) and 0 < measured["unsure_below"] < 1, measured
    published = registry["published"]
    assert published[-1] == version, published
    # The first model's own answers went out first.
    assert [v for v in published[:-1] if v.startswith("tiny-0-g")], published
    assert measured["student"]["layer"] >= 1, measured

    task = next(iter(admin.tasks.list(project=project, fields="all")))
    answer = requests.post(
        f"{backend_url}/predict",
        timeout=120,
        json={
            "tasks": [{"id": task.id, "data": task.data}],
            "project": f"{project}.1",
            "label_config": CONFIG.read_text(),
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["model_version"] == version, answer.json()
    assert "Traceback" not in log_path.read_text()
