"""Test helpers shared by tests/unit/test_finish.py and the tiers that build on it."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import warm
from helpers import CONFIG, ROOT

from backend.labelstudio import audit, model_labels
from backend.labelstudio import schema as schemas
from backend.settings import Settings
from support.bulk_labels import FakeBulkLabels
from support.choices import result
from support.views import FakeViews

SCHEMA = schemas.parse(CONFIG)
SCRIPT = warm.labelloop("finish")


def annotation(label, marked=False, edited_after=0.0, number=1, user=1):
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return {
        "id": number,
        "result": result(label),
        "completed_by": user,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "updated_at": (created + timedelta(seconds=edited_after, microseconds=40)).isoformat().replace("+00:00", "Z"),
        "import_id": model_labels.MARK if marked else None,
    }


class SignalLoop:
    """Stands in for the backend's loop (what build reads of it): its settings and its text features."""

    def __init__(self, truth: dict[str, int], seed: int = 0):
        self.text = SignalFeatures(truth, seed)
        self.settings = Settings()  # the defaults: the demo's gold file

    def pool(self, project):
        return None  # no calibration measured on the project's pool


class SignalFeatures:
    """Vectors that carry each text's label under noise of a strength that varies by text, so the blend is sure of
    some tasks and unsure of others; a flat LLM."""

    def __init__(self, truth: dict[str, int], seed: int = 0):
        rng = np.random.default_rng(seed)
        self.rows = {}
        for text, label in truth.items():
            row = rng.normal(0, 1, 8)
            row[label] += rng.uniform(0, 4)
            self.rows[text] = row
        self.saved = 0

    def features(self):
        return "signal"

    @staticmethod
    def learner(features):
        return "blend"

    def vectors(self, schema, texts, features, pool=None):
        return np.array([self.rows[t] for t in texts]).reshape(len(texts), -1)

    def llm_answers(self, config, texts, pool=None):
        """Every question's probabilities: flat (multi-label: 0.5 for every label)."""
        questions = schemas.as_config(config).questions
        return {
            q.from_name: np.full((len(texts), len(q.labels)), 0.5 if q.multiple else 1 / len(q.labels))
            for q in questions
        }, "flat-llm"

    first_answers = llm_answers  # one model: trained models read the served answers

    def llm_probs(self, config, texts, pool=None):
        answers, version = self.llm_answers(config, texts, pool)
        return answers[schemas.as_config(config).primary.from_name], version

    def save(self):
        self.saved += 1


class FakeLabelStudio(FakeBulkLabels):
    """One project's tasks and tabs, answering the calls build and apply make (every task list gets every task)."""

    def __init__(self, tasks):
        self.listed = [SimpleNamespace(meta=None, **t) for t in tasks]
        self.tasks = SimpleNamespace(list=lambda **kw: self.listed)
        self.projects = SimpleNamespace(get=lambda id: SimpleNamespace(id=id, title="fake", label_config=CONFIG))
        self.views = FakeViews(first_id=100)
        self.setup_bulk()

    def model_annotations(self) -> dict[int, list[dict]]:
        return {
            t.id: [a for a in t.annotations if model_labels.is_model_annotation(a)]
            for t in self.listed
            if any(model_labels.is_model_annotation(a) for a in t.annotations)
        }

    def label(self, task_ids, truth):
        """A person labels these tasks with their true label."""
        for task in self.listed:
            if task.id in task_ids:
                task.annotations = [
                    annotation(SCHEMA.labels[truth[task.data["text"]]], number=10_000 + task.id, user=2)
                ]


def fake_project(n_human: int, n_open: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = {f"review {i}": int(rng.integers(3)) for i in range(n_human + n_open)}
    tasks = []
    for i, (text, label) in enumerate(truth.items()):
        annotations = [annotation(SCHEMA.labels[label], number=i + 1, user=2)] if i < n_human else []
        if i == n_human:  # the model labeled it before: still open, not a human label
            annotations = [annotation("Positive", marked=True, number=i + 1)]
        tasks.append({"id": i + 1, "data": {"text": text}, "annotations": annotations})
    return FakeLabelStudio(tasks), SignalLoop(truth, seed), truth


N_TASKS = 240
N_HUMAN = 60
TARGET = 0.3  # the tiny random model reaches little more: enough to route some tasks to it


def script(*args, url, api_key, env=None, timeout=300):
    full = {**os.environ, "LABEL_STUDIO_URL": url, "LABEL_STUDIO_API_KEY": api_key, **(env or {})}
    return subprocess.run(
        [sys.executable, *SCRIPT, *args], cwd=ROOT, env=full, capture_output=True, text=True, timeout=timeout
    )


def annotations_of(admin, project):
    """task id → its annotations as Label Studio lists them (with the mark and the times)."""
    include = "id,annotations,result,was_cancelled,import_id,last_action,created_at,updated_at,completed_by"
    return {t.id: list(t.annotations or []) for t in admin.tasks.list(project=project, fields="all", include=include)}


def tab_of(admin, project):
    return [v for v in admin.views.list(project=project) if v.data.get("title") == audit.TITLE]
