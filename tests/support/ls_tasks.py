"""Test helpers shared by tests/unit/test_ls_tasks.py and the tiers that build on it."""

from __future__ import annotations

import time

import pytest
import requests
from label_studio_sdk import LabelStudio
from labelstudio import ROOT

from backend.labelstudio import schema as schemas
from backend.quality import gold
from support.choices import result

CONFIG = (ROOT / "label_config" / "sentiment.xml").read_text(encoding="utf-8")
SCHEMA = schemas.parse(CONFIG)
GOLD_TEXT = gold.default_gold().items[0].text
TEXTS = {
    "agree": "A bright and funny family film.",
    "conflict": "The plot drags but the score is lovely.",
    "skipped": "I could not tell what this one was about.",
    "skip_then_label": "It is a movie, and it is two hours long.",
    "truth": "A cold, joyless slog.",
    "changed_mind": "Ambitious, uneven, sometimes brilliant.",
    "gold": GOLD_TEXT,
    "synthetic": "A made-up review written by the augmenter.",
    "junk": "Whatever this was, the annotation says nothing.",
    "a": "Unlabeled review a.",
    "b": "Unlabeled review b.",
    "c": "Unlabeled review c.",
    "d": "Unlabeled review d.",
}


def make_project(client, title, tasks):
    """A project with the sentiment config and these task data; {name: task id} for the named texts."""
    project = client.projects.create(title=title, label_config=CONFIG)
    client.projects.import_tasks(id=project.id, request=tasks)
    by_text = {t.data["text"]: t.id for t in client.tasks.list(project=project.id, page_size=100)}
    return project.id, {name: by_text[text] for name, text in TEXTS.items() if text in by_text}


@pytest.fixture(scope="module")
def users(label_studio):
    annotator = label_studio.create_annotator("ls-tasks-annotator@example.com", "ls-tasks-pass-1234")
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    return admin, LabelStudio(base_url=label_studio.url, api_key=annotator.token), annotator


@pytest.fixture(scope="module")
def labeled_project(users):
    admin, annotator, _ = users
    tasks = [{"text": text, **({"synthetic": True} if name == "synthetic" else {})} for name, text in TEXTS.items()]
    tasks.append({"text": 123})  # Label Studio accepts a number where the config shows text
    project, ids = make_project(admin, "ls_tasks labeled", tasks)

    def label(client, name, value, **kw):
        client.annotations.create(id=ids[name], result=result(value) if value else [], **kw)
        time.sleep(0.01)  # distinct update times, whatever the clock resolution

    label(admin, "agree", "Positive")
    label(annotator, "agree", "Positive")
    label(admin, "conflict", "Positive")
    label(annotator, "conflict", "Negative")  # a tie: the newer one wins
    label(annotator, "skipped", None, was_cancelled=True)
    label(annotator, "skip_then_label", None, was_cancelled=True)
    label(admin, "skip_then_label", "Neutral")
    label(admin, "truth", "Negative", ground_truth=True)
    label(annotator, "truth", "Positive")
    label(annotator, "changed_mind", "Positive")
    label(admin, "changed_mind", "Positive")
    label(annotator, "changed_mind", "Negative")  # the annotator's latest: 1 vs 1, and it is newer
    label(admin, "gold", "Positive")
    label(admin, "synthetic", "Negative")
    admin.annotations.create(id=ids["junk"], result=result("Positive", from_name="wrong"))
    return project, ids


def next_task(url, project, pat):
    answer = requests.get(
        f"{url}/api/projects/{project}/next", headers={"Authorization": f"Bearer {access_token(url, pat)}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()["id"]


def prediction(task, score, version, label="Positive"):
    return {"task": task, "result": result(label), "score": score, "model_version": version}


def access_token(url, pat):
    answer = requests.post(f"{url}/api/token/refresh/", json={"refresh": pat}, timeout=10)
    answer.raise_for_status()
    return answer.json()["access"]
