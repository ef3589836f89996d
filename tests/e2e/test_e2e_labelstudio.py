"""The whole loop against a real Label Studio and the real backend (gunicorn, default model), via the sync CLI.

The labeling config deliberately differs from the demo's (other tag names, data field and labels), so
nothing can pass by relying on the demo's constants.
"""

import json
import re
import time

import labelstudio
import pytest
import requests
from label_studio_sdk import LabelStudio
from labelstudio import ROOT, run_sync

from backend import corpus
from backend.labelstudio.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

CONFIG = """<View>
  <Text name="body" value="$review"/>
  <Choices name="mood" toName="body" choice="single" showInline="true">
    <Choice value="Good"/>
    <Choice value="Bad"/>
    <Choice value="Meh"/>
  </Choices>
</View>
"""
LABELS = {"Good", "Bad", "Meh"}
N_TASKS = 20


def setup_calls(backend_url: str) -> float:
    """The backend's count of successful /setup calls, from its Prometheus metrics."""
    text = requests.get(f"{backend_url}/metrics", timeout=10).text
    match = re.search(r'^backend_requests_total\{route="/setup",status="200"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def events(data_dir) -> list[dict]:
    path = data_dir / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ok(done):
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def test_both_token_kinds_connect(label_studio):
    pat = connect(label_studio.url, label_studio.admin.token)
    legacy = connect(label_studio.url, label_studio.legacy_token)
    assert pat.token_kind == "personal access token" and legacy.token_kind == "legacy token"
    assert pat.user_email == legacy.user_email == label_studio.admin.email


def test_project_import_connect_annotate_export(label_studio, backend_server, tmp_path):
    auth = {"url": label_studio.url, "api_key": label_studio.admin.token}
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)

    # Project: created once, found by title the second time. A copy of the guidelines, so an edit of the
    # real file while the test runs cannot turn "unchanged" into "updated".
    config = tmp_path / "mood.xml"
    config.write_text(CONFIG)
    guidelines = tmp_path / "guidelines.md"
    guidelines.write_text((ROOT / "guidelines" / "sentiment.md").read_text())
    args = ("project", "--title", "E2E moods", "--config", str(config), "--guidelines", str(guidelines))
    project = int(ok(run_sync(*args, **auth)).strip())
    again = run_sync(*args, **auth)
    assert int(ok(again).strip()) == project and "unchanged" in again.stderr
    details = admin.projects.get(id=project)
    assert details.show_instruction and "<strong>Positive</strong>" in details.expert_instruction
    # New guidelines update the same project.
    guidelines.write_text(re.sub(r"^version: .*$", "version: 9.9.9-e2e", guidelines.read_text(), count=1, flags=re.M))
    changed = run_sync(*args, **auth)
    assert int(ok(changed).strip()) == project and "updated" in changed.stderr
    assert "Guidelines version 9.9.9-e2e" in admin.projects.get(id=project).expert_instruction

    # Import: the same reviews as CSV, then as JSONL; the second adds nothing.
    reviews = corpus.load().sample(N_TASKS, random_state=7).rename(columns={"text": "review"})
    reviews.to_csv(tmp_path / "reviews.csv", index=False)
    reviews.to_json(tmp_path / "reviews.jsonl", orient="records", lines=True)
    assert f"imported {N_TASKS} tasks, skipped 0" in ok(
        run_sync("import", "--project", str(project), str(tmp_path / "reviews.csv"), **auth)
    )
    assert f"imported 0 tasks, skipped {N_TASKS}" in ok(
        run_sync("import", "--project", str(project), str(tmp_path / "reviews.jsonl"), **auth)
    )
    assert len(list(admin.tasks.list(project=project, fields="task_only"))) == N_TASKS

    # Connect: Label Studio itself reaches /setup (the CLI's own check accounts for one call).
    before = setup_calls(backend_server.url)
    out = ok(run_sync("connect", "--project", str(project), "--backend-url", backend_server.url, **auth))
    assert f"{N_TASKS} of {N_TASKS} tasks have predictions" in out
    assert setup_calls(backend_server.url) >= before + 2
    out = ok(run_sync("connect", "--project", str(project), "--backend-url", backend_server.url, **auth))
    assert "updated" in out and len(admin.ml.list(project=project)) == 1

    details = admin.projects.get(id=project)
    assert details.sampling == "Uncertainty sampling"
    assert details.model_version and details.model_version != "labelloop"
    for task in admin.tasks.list(project=project, fields="all"):
        predictions = [p for p in task.predictions if p.model_version == details.model_version]
        assert predictions, f"task {task.id} has no prediction from {details.model_version}"
        (region,) = predictions[0].result
        assert (region["from_name"], region["to_name"], region["type"]) == ("mood", "body", "choices")
        assert region["value"]["choices"][0] in LABELS

    # Annotate as two users, each with a token of their own; the webhook runs inside each save.
    annotator = label_studio.create_annotator("anna@example.com", "anna-pass-1234")
    task_ids = [t.id for t in admin.tasks.list(project=project, fields="task_only")][:3]
    saved = {}
    for user in (label_studio.admin, annotator):
        client = connect(label_studio.url, user.token).client  # connect() has refreshed the token already
        for task_id, label in zip(task_ids, sorted(LABELS)):
            started = time.perf_counter()
            annotation = client.annotations.create(
                id=task_id,
                result=[{"from_name": "mood", "to_name": "body", "type": "choices", "value": {"choices": [label]}}],
            )
            elapsed = time.perf_counter() - started
            assert elapsed < 1.0, f"saving an annotation took {elapsed:.2f} s"
            assert annotation.completed_by == user.id
            saved[annotation.id] = task_id

    received = {e["annotation"]: e for e in events(backend_server.data_dir) if e["action"] == "ANNOTATION_CREATED"}
    for annotation_id, task_id in saved.items():
        assert annotation_id in received, f"no webhook for annotation {annotation_id}"
        assert (received[annotation_id]["project"], received[annotation_id]["task"]) == (project, task_id)

    # Export: every task, with both users' annotations.
    out_file = tmp_path / "export" / "labels.json"
    assert f"exported {N_TASKS} tasks with {len(saved)} annotations" in ok(
        run_sync("export", "--project", str(project), "--out", str(out_file), **auth)
    )
    exported = json.loads(out_file.read_text())
    by_user = {a["completed_by"] for t in exported for a in t["annotations"]}
    assert by_user == {label_studio.admin.id, annotator.id}
    assert {a["id"] for t in exported for a in t["annotations"]} == set(saved)
