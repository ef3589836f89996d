"""The task queue and the prediction sets in a real Label Studio 1.23.2: annotators labeling at the same time get
the strategy's order without sharing a task, and re-scores leave one prediction set of this backend per task.

The backend's loop runs in-process on the tiny model (the order, not the model, is under test here); the
end-to-end loop test runs the real model under gunicorn."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import labelstudio
import pytest
from conftest import on_both_databases
from helpers import CONFIG, tiny_predictor
from label_studio_sdk import LabelStudio
from support.lanes import lane_shown

from backend import corpus
from backend.labelstudio import queue as ls_queue
from backend.serving.service import Service
from backend.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

N_TASKS = 45


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def label_studio(request):
    """Every test here runs on Label Studio with SQLite and with PostgreSQL."""
    return on_both_databases(request)


RESULT = [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Positive"]}}]


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor()


def make_project(admin: LabelStudio, title: str, n: int = N_TASKS, seed: int = 5) -> tuple[int, dict[int, str]]:
    """A project of corpus reviews; its id and each task's corpus label."""
    project = admin.projects.create(title=title, label_config=CONFIG).id
    df = corpus.stratified_split(corpus.load(), [n], seed=seed)[0]
    admin.projects.import_tasks(id=project, request=[{"text": t} for t in df["text"]])
    label = dict(zip(df["text"], df["label"]))
    return project, {t.id: label[t.data["text"]] for t in admin.tasks.list(project=project, fields="all")}


def make_loop(label_studio, tmp_path, predictor, **settings):
    service = Service(
        Settings(
            data_dir=tmp_path,
            label_studio_url=label_studio.url,
            label_studio_api_key=label_studio.admin.token,
            **settings,
        ),
        loader=lambda s: predictor,
    )
    service.start()
    service.predictor(wait=60)
    return service.loop


def call(client: LabelStudio, method: str, path: str, **kwargs):
    answer = client._client_wrapper.httpx_client.request(path, method=method, **kwargs)
    assert answer.status_code < 400, answer.text[:300]
    return answer.json()


def queue_ranks(admin: LabelStudio, project: int, lanes: int = 1) -> tuple[str, dict[int, int]]:
    """The project's model_version, and each unlabeled task's rank in that version's order (0 = asked first):
    the j-th task of lane k (by score) has rank j * lanes + k."""
    version = admin.projects.get(id=project).model_version
    by_lane: dict[int, list[tuple[float, int]]] = {}
    for task in admin.tasks.list(project=project, fields="all"):
        if task.is_labeled or task.total_annotations:
            continue
        scores = [p.score for p in task.predictions or [] if p.model_version == version]
        assert len(scores) == 1, f"task {task.id} holds {len(scores)} predictions of {version}"
        by_lane.setdefault(lane_shown(scores[0], lanes), []).append((scores[0], task.id))
    return version, {task: j * lanes + k for k, tasks in by_lane.items() for j, (_, task) in enumerate(sorted(tasks))}


def together(calls):
    """Run the calls at the same moment, one thread each; their results in order."""
    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i):
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


def test_three_annotators_at_once_get_the_strategys_order_and_never_the_same_task(label_studio, tmp_path, predictor):
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    project, _ = make_project(admin, "Queue for a team")
    users = [label_studio.create_annotator(f"queue{i}@example.com", "queue-pass-123") for i in range(3)]
    clients = [LabelStudio(base_url=label_studio.url, api_key=u.token) for u in users]
    loop = make_loop(label_studio, tmp_path, predictor)
    admin.projects.update(id=project, sampling="Uncertainty sampling")
    loop.rescore(str(project))  # the LLM's order, one lane

    # The open-source edition records no project members: "Label All Tasks" (/next) serves the lowest scores
    # first and skips tasks another annotator holds, when they ask one after another. (Asked at the same instant
    # on SQLite, where Label Studio takes its task lock outside a transaction, all three were once served the
    # same task: one more reason for lanes.)
    _, ranks = queue_ranks(admin, project)
    served = [call(c, "GET", f"api/projects/{project}/next")["id"] for c in clients]
    assert [ranks[t] for t in served] == [0, 1, 2]
    for client, task in zip(clients, served):
        client.annotations.create(id=task, result=RESULT)

    # With members recorded (Enterprise teams), /next picks at random: lanes, one tab per annotator.
    assert label_studio.add_members(project, [label_studio.admin_email] + [u.email for u in users]) == 4
    loop.set_lanes(str(project), 3)
    assert loop.rescoring.wait(str(project), timeout=120)
    tabs = {
        v.data["title"]: v for v in admin.views.list(project=project) if ls_queue.is_queue_title(v.data.get("title"))
    }
    assert sorted(tabs) == ["Model queue 1/3", "Model queue 2/3", "Model queue 3/3"]

    def next_in_tab(client, tab):
        # What "Label Tasks As Displayed" sends: the tab's filters and ordering.
        body = {"ordering": tab.data["ordering"], "filters": tab.data["filters"]}
        return call(
            client, "POST", "api/dm/actions", params={"id": "next_task", "project": project, "tabID": tab.id}, json=body
        )["id"]

    lanes = [tabs[f"Model queue {i + 1}/3"] for i in range(3)]
    for round_ in range(2):
        _, ranks = queue_ranks(admin, project, lanes=3)
        served = together([lambda c=c, t=t: next_in_tab(c, t) for c, t in zip(clients, lanes)])
        assert len(set(served)) == 3, f"round {round_}: a task was served twice: {served}"
        assert [ranks[t] for t in served] == [0, 1, 2], f"round {round_}: not the most urgent tasks"
        together([lambda c=c, t=t: c.annotations.create(id=t, result=RESULT) for c, t in zip(clients, served)])

    # A re-score in another order (a strategy change here, a promotion in use): the open tabs follow it.
    before, _ = queue_ranks(admin, project)
    loop.set_strategy(str(project), "random")
    assert loop.rescoring.wait(str(project), timeout=120)
    after, ranks = queue_ranks(admin, project, lanes=3)
    assert after != before
    served = together([lambda c=c, t=t: next_in_tab(c, t) for c, t in zip(clients, lanes)])
    assert [ranks[t] for t in served] == [0, 1, 2]


def test_five_promotions_leave_one_prediction_per_task_and_the_queue_never_points_at_a_gap(
    label_studio, tmp_path, predictor
):
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    project, labels = make_project(admin, "Prediction housekeeping", seed=9)
    ids = sorted(labels)
    # Someone else's predictions: never touched.
    admin.projects.import_predictions(
        id=project, request=[{"task": i, "result": RESULT, "score": 0.5, "model_version": "imported-v0"} for i in ids]
    )
    for task in ids[:30]:
        admin.annotations.create(id=task, result=[{**RESULT[0], "value": {"choices": [labels[task]]}}])
    # MiniLM vectors: real embeddings beat the tiny random LLM on 30 labels, so the first run is promoted for sure.
    loop = make_loop(label_studio, tmp_path, predictor, rescore_chunk=10, write_chunk=10, llm_feature_depth=0)
    loop.rescore(str(project))  # the LLM alone: the first set
    assert loop.train(str(project))["result"] == "promoted"
    assert loop.rescoring.wait(str(project), timeout=120)
    model = loop.projects.model(str(project))  # the set: here one question's model
    llm_version = next(iter(model.models.values())).llm_version

    gaps: list[str] = []
    seen: set[str] = set()
    stop = threading.Event()

    def observe():
        while True:
            last = stop.is_set()  # one more look after the last switch: a slow look may have started before it
            version = admin.projects.get(id=project).model_version
            seen.add(version)
            unlabeled = [t for t in admin.tasks.list(project=project, fields="all") if not t.total_annotations]
            missing = [t.id for t in unlabeled if not any(p.model_version == version for p in t.predictions or [])]
            # A set being written or deleted meanwhile is fine; the project pointing at it is not.
            if missing and admin.projects.get(id=project).model_version == version:
                gaps.append(f"{version}: {len(missing)} tasks without a prediction")
            if last:
                return

    observer = threading.Thread(target=observe)
    observer.start()
    try:
        store = loop.projects.store(str(project))
        for n in range(2, 6):  # promotions r2..r5 (r1 was trained above)
            version = f"{llm_version}-r{n}"
            store.add(version, replace(model, version=version).as_data(), {"labels": 30, "result": "promoted"}, True)
            loop.rescore(str(project))
            time.sleep(0.5)
    finally:
        stop.set()
        observer.join(timeout=60)
    assert not gaps, gaps
    final = admin.projects.get(id=project).model_version
    assert final == f"{llm_version}-r5" and final in seen and len(seen) >= 3, (final, sorted(seen))
    ours = set(store.published())
    for task in admin.tasks.list(project=project, fields="all"):
        versions = [p.model_version for p in task.predictions or []]
        assert [v for v in versions if v in ours] == [final], (task.id, versions)
        assert versions.count("imported-v0") == 1
    listing = call(admin, "GET", f"api/projects/{project}/model-versions/")
    assert listing == {"imported-v0": len(ids), final: len(ids)}
