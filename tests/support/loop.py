"""Test helpers shared by tests/unit/test_loop.py and the tiers that build on it."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
from helpers import CONFIG, tiny_predictor

from backend import corpus
from backend.labelstudio import review as ls_review
from backend.labelstudio import schema as schemas
from backend.labelstudio import tabs as ls_tabs
from backend.labelstudio import tasks as ls_tasks
from backend.serving.service import Service
from backend.settings import Settings

SCHEMA = schemas.parse(CONFIG)


class FakeProject:
    """A project's tasks and resolved labels, answering the calls the loop makes through ls_tasks."""

    def __init__(self, n_tasks: int = 160, n_labeled: int = 120) -> None:
        df = corpus.stratified_split(corpus.load(), [n_tasks], seed=3)[0].reset_index(drop=True)
        self.tasks = [(i + 1, text) for i, text in enumerate(df["text"])]
        self.labels = {i + 1: label for i, label in enumerate(df["label"][:n_labeled])}
        self.pushed: list[dict] = []
        self.model_version = None
        self.versions: dict[str, int] = {}  # prediction counts per model version, as Label Studio keeps them
        self.deleted: list[str] = []
        self.lanes = None
        self.fetches = 0
        self.pool_reads: list[str] = []  # the name of each reading thread
        self.gold_sets: list = []  # what each fetch was told to leave out
        self.reads: list[list[int] | None] = []
        self.votes: dict[int, tuple] = {}
        self.answers: dict[int, dict[str, str]] = {}  # every question's labels by task; else `labels` answers the first
        self.gold: list[ls_tasks.GoldVote] = []  # the annotators' answers on gold tasks
        self.review_tab: dict | None = None  # what the "Label issues" tab holds
        self.lock = threading.Lock()
        self.client = SimpleNamespace(projects=SimpleNamespace(get=lambda id: SimpleNamespace(label_config=CONFIG)))

    def install(self, monkeypatch) -> None:
        texts = dict(self.tasks)

        def fetch_labeled(client, project_id, schema, task_ids=None, *, gold_set, gold_votes=None):
            self.gold_sets.append(gold_set)
            if gold_votes is not None:
                gold_votes.extend(v for v in self.gold if task_ids is None or v.task_id in task_ids)
            first = getattr(schema, "questions", (schema,))[0].from_name
            with self.lock:
                self.fetches += 1
                self.reads.append(None if task_ids is None else sorted(task_ids))
                wanted = self.labels if task_ids is None else {i: self.labels[i] for i in task_ids if i in self.labels}
                labeled = [
                    ls_tasks.LabeledTask(
                        i,
                        texts[i],
                        label,
                        len(self.votes.get(i, ())) or 1,
                        self.votes.get(i, (("user:1", label),)),
                        self.answers.get(i, {first: label}),
                    )
                    for i, label in wanted.items()
                ]
            return labeled, ls_tasks.FetchStats(tasks=len(labeled))

        def push_predictions(client, project_id, predictions, chunk=500, progress=None):
            self.pushed = list(predictions)
            for p in predictions:
                self.versions[p["model_version"]] = self.versions.get(p["model_version"], 0) + 1
            if progress:
                progress(len(predictions), len(predictions))
            return len(predictions)

        def set_model_version(client, project_id, version):
            assert self.versions.get(version) == len(self.tasks), "switched to an incomplete set"
            self.model_version = version

        def delete_model_version(client, project_id, version):
            assert version != self.model_version, "deleted the set the project points at"
            self.deleted.append(version)
            del self.versions[version]

        def ensure_queue_tabs(client, project_id, lanes):
            self.lanes = lanes
            return {}

        monkeypatch.setattr(ls_tasks, "fetch_labeled", fetch_labeled)

        def fetch_pool(client, project_id, schema):
            self.pool_reads.append(threading.current_thread().name)
            return list(self.tasks)

        monkeypatch.setattr(ls_tasks, "fetch_pool", fetch_pool)
        monkeypatch.setattr(ls_tasks, "push_predictions", push_predictions)
        monkeypatch.setattr(ls_tasks, "set_model_version", set_model_version)
        monkeypatch.setattr(ls_tasks, "model_versions", lambda client, project_id: dict(self.versions))
        monkeypatch.setattr(ls_tasks, "delete_model_version", delete_model_version)
        monkeypatch.setattr(ls_tabs, "ensure_queue_tabs", ensure_queue_tabs)
        monkeypatch.setattr(ls_review, "waiting", lambda client, project_id: self.review_tab)


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor()


def make_service(tmp_path, predictor, project: FakeProject, **settings) -> Service:
    base = dict(data_dir=tmp_path, label_studio_url="http://ls.invalid", label_studio_api_key="k", ls_retries=0)
    service = Service(Settings(**{**base, **settings}), loader=lambda s: predictor)
    service.loop.client_factory = lambda: project.client
    service.start()
    service.predictor(wait=60)
    return service


def webhook(client, action: str = "ANNOTATION_CREATED", project: int = 5):
    return client.post(
        "/webhook", data=json.dumps({"action": action, "project": {"id": project}}), content_type="application/json"
    )
