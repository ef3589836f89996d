"""Faults on the live backend: kill -9 of gunicorn (master and worker) inside a pool re-score and inside a training
run, against a real Label Studio. After each restart the last promoted model serves, every artifact loads, and the
next run reads every label Label Studio holds, those saved while the backend was down included, and brings the
project's predictions and model_version up to date. Real gunicorn, the real model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import labelstudio
import pytest
import requests
from helpers import ROOT, wait_for
from label_studio_sdk import LabelStudio

from backend import corpus
from backend.dev import processes
from backend.labelstudio import sync, task_files
from backend.loop.model_store import ModelStore
from backend.loop.projects import ModelSet

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

N_TASKS, N_LATER = 60, 24  # tasks imported at the start; before the kill inside training
FIRST_BATCH, LATER_BATCH = 40, 10  # of those, imported with an annotation (at 30 only two are Neutral, too few for
# the candidates' cross-validation to show they learned it: the LLM kept serving)
ATTEMPTS = 3  # a kill that misses its window is tried again with more annotations
CONFIG = ROOT / "label_config" / "sentiment.xml"


class Backend:
    """gunicorn on a fixed port, in a process group of its own so one SIGKILL takes master and worker together:
    killing the master alone leaves the worker serving, killing the worker alone gets it respawned. The port
    stays the same across restarts because Label Studio's connection and webhook name it."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.port = processes.free_port()
        self.url = processes.url_of(self.port)
        self.env = env
        self.tmp = tmp
        self.logs: list[Path] = []
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log_path = self.tmp / f"gunicorn-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        self.proc = processes.start_gunicorn(self.port, log_path, self.env, own_session=True)
        processes.wait_healthy(self.proc, self.url, log_path, timeout=180)

    def log(self) -> str:
        return self.logs[-1].read_text()

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        # The worker is reparented, not waited for; once it is gone nothing listens on the port.
        wait_for("the killed backend's port to close", lambda: processes.port_free(self.port), timeout=30, every=0.1)

    def stop(self) -> None:
        processes.stop(self.proc)

    def versions(self, project: int) -> dict:
        return requests.get(f"{self.url}/versions", params={"project": project}, timeout=10).json()


def promoted(store: ModelStore) -> list[str]:
    return [v["version"] for v in store.versions() if v["promoted"]]


def rescore_writing(log_text: str, project: int) -> bool:
    """A re-score has written predictions to Label Studio and not reported its end (switching the version) since."""
    wrote = log_text.rfind(f"re-scoring project {project}: ")
    return wrote > log_text.rfind(f"re-scored project {project}:") and "predictions written" in log_text[wrote:]


def choice(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}]


def test_kill_9_inside_a_rescore_and_inside_training_loses_nothing(label_studio, tmp_path):
    backend = Backend(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.admin.token,
            "RANK_STRATEGY": "margin",
            # Uncalibrated, the 0.5B model almost never answers Neutral, so the first retrain is promoted.
            "CALIBRATION": "none",
            # Small chunks make a re-score of the pool many Label Studio writes long, a window to kill inside.
            "RESCORE_CHUNK": "8",
            "WRITE_CHUNK": "8",  # many small writes: a kill can land between them
        },
        tmp_path,
    )
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    project = sync.ensure_project(admin, "Faults live", CONFIG, ROOT / "guidelines" / "sentiment.md").id
    store = ModelStore(tmp_path / "data", str(project))
    df = corpus.stratified_split(corpus.load(), [N_TASKS + N_LATER], seed=23)[0].reset_index(drop=True)
    texts, label_of = list(df["text"]), dict(zip(df["text"], df["label"]))
    annotated: list[int] = []
    unlabeled: list[tuple[int, str]] = []

    def import_texts(batch: list[str], labeled: int) -> None:
        """Import tasks, the first `labeled` with an annotation: an import sends no annotation webhooks."""
        tasks = [{"data": {"text": t, task_files.HASH_KEY: task_files.task_hash({"text": t})}} for t in batch]
        for task, text in zip(tasks[:labeled], batch):
            task["annotations"] = [{"result": choice(label_of[text])}]
        sync.import_tasks(admin, project, tasks, progress=False)
        ids = {t.data["text"]: t.id for t in admin.tasks.list(project=project, include="id,data")}
        annotated.extend(ids[t] for t in batch[:labeled])
        unlabeled.extend((ids[t], label_of[t]) for t in batch[labeled:])

    def annotate(n: int) -> None:
        for _ in range(n):
            task_id, label = unlabeled.pop()  # the newest tasks first: texts the backend has not scored yet
            admin.annotations.create(id=task_id, result=choice(label))
            annotated.append(task_id)

    def predictions() -> int:
        return sum(len(t.predictions or []) for t in admin.tasks.list(project=project, fields="all"))

    def start_training() -> None:
        # What Label Studio's "Start training" sends.
        answer = requests.post(
            f"{backend.url}/webhook", json={"action": "START_TRAINING", "project": {"id": project}}, timeout=10
        )
        assert answer.status_code == 200 and answer.json()["training"] == "started", answer.text

    def check_restart(promoted_before: list[str]) -> str:
        """Nothing promoted before the kill is lost, the last promotion serves and answers /predict, every
        artifact loads."""
        on_disk = promoted(store)
        assert on_disk[: len(promoted_before)] == promoted_before, "a promoted version was lost"
        versions = backend.versions(project)
        assert versions["current"] == on_disk[-1]
        assert [v for v in versions["versions"] if v in on_disk] == on_disk
        assert [v["version"] for v in versions["training"]] == [v["version"] for v in store.versions()]
        for version in on_disk:
            assert ModelSet.of(store.load(version)).version == version
        task = {"id": 1, "data": {"text": texts[0]}}
        body = {"tasks": [task], "project": str(project), "label_config": CONFIG.read_text()}
        answer = requests.post(f"{backend.url}/predict", json=body, timeout=60).json()
        assert answer["model_version"] == versions["current"] and answer["results"][0]["result"]
        return versions["current"]

    def check_caught_up(records: int) -> dict:
        """The first run after `records` read every label Label Studio holds, and once the loop is idle every
        unlabeled task has a prediction from the serving version, which is the project's model_version."""
        versions = wait_for(
            "the next run to finish and the loop to settle",
            lambda: (v := backend.versions(project)) and len(v["training"]) > records and not v["busy"] and v,
        )
        in_label_studio = [
            t.id for t in admin.tasks.list(project=project, include="id,total_annotations") if t.total_annotations
        ]
        assert sorted(in_label_studio) == sorted(annotated)
        run = versions["training"][records]
        assert run["stats"]["read"] == "all" and run["labels"] == len(annotated), run
        current = versions["current"]
        assert current == promoted(store)[-1]
        # The serving version's predictions go by its name, or "<name>+<n>" when a set cut short by the kill already
        # holds the name (backend/loop/project_loop.py); that set is deleted once the complete one serves.
        published = admin.projects.get(id=project).model_version
        assert published == current or re.fullmatch(re.escape(current) + r"\+[0-9]+", published), published
        ours = set(store.published())
        missing, doubled = [], []
        for t in admin.tasks.list(project=project, fields="all"):
            names = [p.model_version for p in t.predictions or [] if p.model_version in ours]
            if not t.total_annotations and published not in names:
                missing.append(t.id)
            if len(names) > 1:
                doubled.append(t.id)
        assert not missing, f"{len(missing)} unlabeled tasks have no prediction from {published}"
        assert not doubled, f"{len(doubled)} tasks hold more than one prediction set of this backend"
        return run

    try:
        backend.start()
        import_texts(texts[:N_TASKS], labeled=FIRST_BATCH)
        connected = sync.connect_backend(admin, project, backend.url, progress=False, strategy="margin")
        assert connected.predicted == N_TASKS

        # 1. Kill inside the re-score that follows a promotion, while it writes predictions to Label Studio.
        for attempt in range(ATTEMPTS):
            if attempt:  # the re-score ended just before the kill: more labels, another run, another re-score
                annotate(4)
                backend.start()
            version_before, predictions_before = admin.projects.get(id=project).model_version, predictions()
            start_training()
            wait_for("a re-score writing", lambda: rescore_writing(backend.log(), project), every=0.05)
            promoted_before = promoted(store)
            backend.kill()
            if rescore_writing(backend.log(), project):
                break
        else:
            pytest.fail(f"no kill landed inside a re-score in {ATTEMPTS} attempts")
        assert promoted_before and promoted_before[0].startswith(f"{connected.model_version}-r")
        # Label Studio got some of the re-score's predictions but not the version switch, its last step.
        assert predictions() > predictions_before
        assert admin.projects.get(id=project).model_version == version_before
        backend.start()
        check_restart(promoted_before)
        records = len(store.versions())
        start_training()
        # No label came since the last run, so this one makes the same decision and keeps the serving model:
        # only redoing the lost re-score can bring Label Studio up to date.
        assert check_caught_up(records)["result"] == "kept"

        # 2. Kill inside a training run: reviews the backend never scored keep it going for seconds.
        import_texts(texts[N_TASKS:], labeled=LATER_BATCH)
        for _ in range(ATTEMPTS):
            records = len(store.versions())
            start_training()
            wait_for(
                "a training run",
                lambda records=records: backend.versions(project)["busy"] and len(store.versions()) == records,
                timeout=60,
                every=0.05,
            )
            promoted_before = promoted(store)
            backend.kill()
            annotate(3)  # saved while the backend is down: their webhooks reach nobody
            if len(store.versions()) == records:  # killed before the run recorded its decision
                break
            backend.start()
        else:
            pytest.fail(f"no kill landed inside a training run in {ATTEMPTS} attempts")
        backend.start()
        check_restart(promoted_before)
        records = len(store.versions())
        annotate(1)  # its webhook starts the next run
        assert check_caught_up(records)["result"] in ("promoted", "kept")

        for log_path in backend.logs:
            assert "Traceback" not in log_path.read_text(), log_path.name
    finally:
        backend.stop()
