"""Synthetic tasks in a real Label Studio: `labelloop synthetic import` marks them and pre-fills the intended label,
annotators accept, edit or skip them, `review` reads the rates from the export, and neither training nor agreement
counts them as real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import labelstudio
import pytest
import warm
from label_studio_sdk import LabelStudio
from labelstudio import ROOT

from backend.labelstudio import export as exports
from backend.labelstudio import schema as schemas
from backend.labelstudio import sync
from backend.labelstudio import tasks as ls_tasks
from backend.quality import gold
from backend.synthetic import generate as syn

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

SCRIPT = warm.labelloop("synthetic")
CONFIG = (ROOT / "label_config" / "sentiment.xml").read_text(encoding="utf-8")
SCHEMA = schemas.parse(CONFIG)
TEXTS = {
    "Positive": "A sunny little comedy that earns every one of its laughs.",
    "Negative": "The script wanders off and the actors seem to follow it out of the room.",
    "Neutral": "A retired pilot and his granddaughter restore a seaplane on a remote Norwegian fjord.",
}


def item(n: int, label: str, status: str = "accepted") -> dict:
    return {
        "id": f"syn-test-{n}",
        "job": n,
        "text": TEXTS.get(label, f"rejected text {n}"),
        "intended_label": label,
        "mode": "minority" if label == "Neutral" else "conditional",
        "raw": "",
        "finished": True,
        "provenance": {
            "generator": syn.GENERATOR,
            "model": "qwen2.5-coder-0.5b-instruct",
            "model_identity": "gguf:abc",
            "mode": "minority" if label == "Neutral" else "conditional",
            "style": None,
            "intended_label": label,
            "prompt": [{"role": "user", "content": f"Write one new {label} text."}],
            "params": {"temperature": 0.9, "top_p": 0.95, "seed": 7, "max_new_tokens": 64},
            "guidelines_version": "1.0.0",
            "sources": ["0123456789ab"],
        },
        "filter": {
            "status": status,
            "reason": None if status == "accepted" else "length",
            "scores": {"llm_p_intended": 0.81, "rouge_l_max": 0.3},
        },
    }


def run(*args, url: str, token: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": token}
    return subprocess.run(
        [sys.executable, *SCRIPT, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def choice(label: str) -> list[dict]:
    return [SCHEMA.result(label)]


def test_import_review_and_exclusion(label_studio, tmp_path):
    url, token = label_studio.url, label_studio.admin.token
    filtered = tmp_path / "filtered.jsonl"
    items = [item(0, "Positive"), item(1, "Negative"), item(2, "Neutral"), item(3, "Positive", "rejected")]
    filtered.write_text("".join(json.dumps(i) + "\n" for i in items))

    title = "synthetic review e2e"
    first = run("import", filtered, "--title", title, "--quiet", url=url, token=token)
    assert first.returncode == 0, first.stderr
    assert "imported 3 synthetic tasks, skipped 0" in first.stdout and "warning" not in first.stderr
    again = run("import", filtered, "--title", title, "--quiet", url=url, token=token)
    assert "imported 0 synthetic tasks, skipped 3" in again.stdout, again.stderr

    admin = LabelStudio(base_url=url, api_key=token)
    project = sync.find_project(admin, title)
    # Label Studio took the predictions' version, so the editor pre-fills the intended label.
    assert admin.projects.get(id=project.id).model_version == syn.PREDICTION_VERSION
    tasks = {t.data["text"]: t for t in admin.tasks.list(project=project.id, fields="all")}
    assert set(tasks) == set(TEXTS.values())
    for label, text in TEXTS.items():
        data = tasks[text].data
        assert data["synthetic"] is True and data["provenance"]["intended_label"] == label
        assert data["provenance"]["model"] == "qwen2.5-coder-0.5b-instruct"
        assert data["provenance"]["params"]["seed"] == 7 and data["provenance"]["guidelines_version"] == "1.0.0"
        assert data["provenance"]["prompt"][0]["content"] == f"Write one new {label} text."
        (prediction,) = tasks[text].predictions
        p = prediction if isinstance(prediction, dict) else prediction.__dict__
        assert p["model_version"] == syn.PREDICTION_VERSION and p["score"] == pytest.approx(0.81)
        assert p["result"][0]["value"]["choices"] == [label]

    # A real task with a real annotation, next to the synthetic ones.
    admin.projects.import_tasks(id=project.id, request=[{"text": "A real review, written by a person."}])
    real_id = next(t.id for t in admin.tasks.list(project=project.id) if not t.data.get("synthetic"))
    annotator = label_studio.create_annotator("synthetic-reviewer@example.com", "synthetic-pass-1234")
    reviewer = LabelStudio(base_url=url, api_key=annotator.token)
    reviewer.annotations.create(id=tasks[TEXTS["Positive"]].id, result=choice("Positive"))  # accepted as is
    reviewer.annotations.create(id=tasks[TEXTS["Negative"]].id, result=choice("Neutral"))  # edited
    reviewer.annotations.create(id=tasks[TEXTS["Neutral"]].id, result=[], was_cancelled=True)  # rejected
    reviewer.annotations.create(id=real_id, result=choice("Positive"))
    admin.annotations.create(id=real_id, result=choice("Positive"))

    export = tmp_path / "export.json"
    sync.export_json(admin, project.id, export)
    review = run("review", export, "--format", "json", url=url, token=token)
    assert review.returncode == 0, review.stderr
    rates = json.loads(review.stdout)
    assert rates["synthetic_tasks"] == 3
    overall = rates["groups"]["all"]
    assert (overall["accepted"], overall["edited"], overall["rejected"], overall["unreviewed"]) == (1, 1, 1, 0)
    assert overall["accepted_rate"] == pytest.approx(1 / 3)
    assert rates["groups"]["intended: Negative"]["edited"] == 1
    assert rates["groups"]["mode: minority"]["rejected"] == 1

    # Never real data: not in training, not in agreement, not in a --real pool read from the export.
    labeled, stats = ls_tasks.fetch_labeled(admin, project.id, SCHEMA, gold_set=gold.default_gold())
    assert [t.task_id for t in labeled] == [real_id] and stats.synthetic == 3
    dataset = exports.load_export(export, labels=list(SCHEMA.labels))
    assert [i.task_id for i in dataset.items] == [real_id] and dataset.counts["synthetic_tasks_excluded"] == 3
    real = syn.load_real(export).to_dict("records")
    assert real == [{"text": "A real review, written by a person.", "label": "Positive"}]


def test_import_into_a_project_on_another_model_version_warns(label_studio, tmp_path):
    url, token = label_studio.url, label_studio.admin.token
    admin = LabelStudio(base_url=url, api_key=token)
    project = admin.projects.create(title="synthetic into a served project", label_config=CONFIG)
    admin.projects.import_tasks(
        id=project.id,
        request=[
            {
                "data": {"text": "Served already."},
                "predictions": [{"model_version": "backend-v1", "result": choice("Positive"), "score": 0.5}],
            }
        ],
    )
    assert admin.projects.get(id=project.id).model_version == "backend-v1"
    filtered = tmp_path / "filtered.jsonl"
    filtered.write_text(json.dumps(item(0, "Neutral")) + "\n")
    done = run("import", filtered, "--project", project.id, "--quiet", url=url, token=token)
    assert done.returncode == 0, done.stderr
    assert "imported 1 synthetic tasks" in done.stdout
    assert "warning:" in done.stderr and "'backend-v1'" in done.stderr and "--title" in done.stderr

    missing = run("import", filtered, "--project", 99999, "--quiet", url=url, token=token)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "99999" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
