"""Keep a Label Studio project in step with this repository: its config and guidelines, tasks, ML backend, export.

Every step is safe to run again: the project is found by title, tasks carry a hash of their data so a second
import skips them, and the ML backend connection is updated in place rather than added twice.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import requests
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from tqdm import tqdm

from backend.files import write_atomically
from backend.labelstudio import tabs as ls_tabs
from backend.labelstudio.client import SyncError, describe
from backend.labelstudio.instructions import guidelines_html
from backend.labelstudio.records import field_of
from backend.labelstudio.task_files import HASH_KEY, task_hash

SAMPLING = "Uncertainty sampling"
BACKEND_TITLE = "labelloop"


# ---------------------------------------------------------------- project


@dataclass(frozen=True)
class ProjectResult:
    id: int
    status: str  # "created", "updated" or "unchanged"


def get_project(client: LabelStudio, project_id: int) -> Any:
    try:
        return client.projects.get(id=project_id)
    except ApiError as e:
        if e.status_code == 404:
            raise SyncError(
                f"Label Studio has no project {project_id} (or this API key's user cannot see it)"
            ) from None
        raise


def find_project(client: LabelStudio, title: str) -> Any | None:
    """The oldest project with exactly this title; titles are not unique in Label Studio, so say so if several."""
    projects: Iterable[Any] = client.projects.list(page_size=100)  # the SDK's pager is typed with no item type
    matches = sorted((p for p in projects if (p.title or "").strip() == title), key=lambda p: p.id)
    if len(matches) > 1:
        ids = ", ".join(str(p.id) for p in matches)
        print(f"warning: several projects are titled {title!r} ({ids}); using {matches[0].id}", file=sys.stderr)
    return matches[0] if matches else None


def ensure_project(
    client: LabelStudio, title: str, config_path: str | os.PathLike, guidelines_path: str | os.PathLike
) -> ProjectResult:
    """Create the project, or bring the one with this title up to date with the config and guidelines."""
    title = title.strip()
    if not title:
        raise SyncError("the project title is empty")
    try:
        # Label Studio strips the config it stores; stripping here keeps the comparison below honest.
        label_config = Path(config_path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise SyncError(f"cannot read labeling config {config_path}: {e.strerror}") from None
    wanted: dict[str, Any] = {
        "label_config": label_config,
        "expert_instruction": guidelines_html(guidelines_path),
        "show_instruction": True,
    }
    existing = find_project(client, title)
    try:
        if existing is None:
            project = client.projects.create(title=title, **wanted)
            return ProjectResult(_id(project), "created")
        existing = client.projects.get(id=existing.id)  # the list's items may leave fields out
        # Only send what changed: Label Studio checks a new label config against every existing annotation.
        changes = {k: v for k, v in wanted.items() if not _same(getattr(existing, k, None), v)}
        if not changes:
            return ProjectResult(_id(existing), "unchanged")
        client.projects.update(id=_id(existing), **changes)
        return ProjectResult(_id(existing), "updated")
    except ApiError as e:
        raise SyncError(f"Label Studio refused the project {title!r}: {describe(e)}") from None


def _id(project: Any) -> int:
    # The SDK types every field optional; a project Label Studio sends back always has its id.
    return project.id


def _same(current: Any, wanted: Any) -> bool:
    if isinstance(current, str) and isinstance(wanted, str):
        return current.strip() == wanted.strip()
    return current == wanted


# ---------------------------------------------------------------- tasks


def existing_hashes(client: LabelStudio, project_id: int) -> set[str]:
    """Hashes of the project's tasks; tasks imported some other way are hashed from their data."""
    hashes = set()
    listed: Iterable[Any] = client.tasks.list(project=project_id, fields="task_only", page_size=1000)
    for task in listed:
        data = task.data or {}
        hashes.add(data.get(HASH_KEY) or task_hash(data))
    return hashes


@dataclass(frozen=True)
class ImportResult:
    imported: int
    skipped: int


def import_tasks(
    client: LabelStudio, project_id: int, tasks: list[dict], chunk_size: int = 500, progress: bool = True
) -> ImportResult:
    """Import the tasks the project does not have yet, `chunk_size` per request."""
    get_project(client, project_id)
    known = existing_hashes(client, project_id)
    new = [t for t in tasks if t["data"][HASH_KEY] not in known]
    with tqdm(total=len(new), unit="task", desc="import", disable=not progress or not new) as bar:
        for start in range(0, len(new), chunk_size):
            chunk = new[start : start + chunk_size]
            try:
                # The SDK sends plain task dicts as they are; its type names only its own request model.
                client.projects.import_tasks(id=project_id, request=chunk)  # type: ignore[arg-type]
            except ApiError as e:
                raise SyncError(
                    f"Label Studio refused tasks {start + 1}-{start + len(chunk)} of the new ones "
                    f"({start} imported before): {describe(e)}"
                ) from None
            bar.update(len(chunk))
    return ImportResult(imported=len(new), skipped=len(tasks) - len(new))


# ---------------------------------------------------------------- ML backend


def wait_for_backend(backend_url: str, timeout: float = 120.0, auth: tuple[str, str] | None = None) -> None:
    """Return once the backend's /health says UP; it answers 503 while its model loads."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = requests.get(f"{backend_url}/health", timeout=10, auth=auth)
        except requests.RequestException as e:
            raise SyncError(f"cannot reach the ML backend at {backend_url}: {describe(e)}") from None
        if answer.status_code == 200:
            return
        body = _json_or_empty(answer)
        if body.get("status") == "ERROR":
            raise SyncError(f"the ML backend at {backend_url} is broken: {body.get('error') or 'see its log'}")
        if answer.status_code != 503 or time.monotonic() > deadline:
            raise SyncError(
                f"the ML backend at {backend_url} is not ready (GET /health answered HTTP {answer.status_code})"
            )
        time.sleep(1)


def _json_or_empty(answer: requests.Response) -> dict:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def backend_model_version(
    backend_url: str,
    project_id: int,
    label_config: str,
    timeout: float = 300.0,
    extra_params: dict | None = None,
    auth: tuple[str, str] | None = None,
) -> str:
    """Ask the backend's /setup whether it can serve this config, and which model version it will predict with."""
    body: dict[str, Any] = {"project": str(project_id), "schema": label_config}
    if extra_params:
        body["extra_params"] = extra_params
    try:
        answer = requests.post(f"{backend_url}/setup", json=body, timeout=timeout, auth=auth)
    except requests.RequestException as e:
        raise SyncError(f"cannot reach the ML backend at {backend_url}: {describe(e)}") from None
    body = _json_or_empty(answer)
    if answer.status_code == 200 and body.get("model_version"):
        return str(body["model_version"])
    reason = body.get("error") or answer.text.strip()[:200] or f"HTTP {answer.status_code}"
    if answer.status_code == 401:
        raise SyncError(f"the ML backend at {backend_url} wants credentials: set BASIC_AUTH_USER and BASIC_AUTH_PASS")
    if 400 <= answer.status_code < 500:
        raise SyncError(f"the ML backend cannot serve project {project_id}'s labeling config: {reason}")
    raise SyncError(f"the ML backend at {backend_url} failed on /setup (HTTP {answer.status_code}): {reason}")


@dataclass(frozen=True)
class ConnectResult:
    ml_backend_id: int
    created: bool
    model_version: str
    project_model_version: str  # equals model_version once any task has a prediction from it
    tasks: int
    predicted: int  # tasks with a prediction from model_version
    tabs: tuple[str, ...] = ()  # the queue's Data Manager tabs (backend/labelstudio/queue.py, tabs.py)
    page: str = ""  # the backend's page of the project, named in the project's description


def _attach_backend(
    client: LabelStudio,
    project_id: int,
    backend_url: str,
    extra_params: dict | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, bool]:
    backends = client.ml.list(project=project_id)
    ours = [b for b in backends if (b.url or "").rstrip("/") == backend_url]
    # Label Studio keeps extra_params with the connection and sends them with every /setup it makes.
    fields: dict[str, Any] = {"url": backend_url, "title": BACKEND_TITLE}
    if extra_params:
        fields["extra_params"] = extra_params
    if auth:
        fields.update(auth_method="BASIC_AUTH", basic_auth_user=auth[0], basic_auth_pass=auth[1])
    try:
        if ours:
            backend = client.ml.update(id=ours[0].id, project=project_id, **fields)
            created = False
        else:
            backend = client.ml.create(project=project_id, **fields)
            created = True
    except ApiError as e:
        hint = ""
        if e.status_code == 403:
            hint = (
                " (a backend on a local address needs Label Studio started with ML_BLOCK_LOCAL_IP=false "
                "and SSRF_PROTECTION_ENABLED=false)"
            )
        raise SyncError(f"Label Studio refused to connect the ML backend {backend_url}: {describe(e)}{hint}") from None
    # Label Studio asks only the project's first backend for predictions.
    first = min([b.id for b in backends] + [backend.id])
    if first != backend.id:
        print(
            f"warning: project {project_id} has an older ML backend (id {first}); Label Studio predicts with that one",
            file=sys.stderr,
        )
    return backend.id, created


def _authorize_webhook(client: LabelStudio, project_id: int, backend_url: str, auth: tuple[str, str]) -> None:
    """Label Studio sends the backend's credentials with /setup and /predict but makes the backend's webhook
    without them; the webhook's own headers carry them instead."""
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    url = f"{backend_url}/webhook"
    try:
        hooks = [h for h in client.webhooks.list(project=str(project_id)) if (h.url or "").rstrip("/") == url]
        if not hooks:
            raise SyncError(f"Label Studio made no webhook {url} for project {project_id}; reconnect the backend")
        for hook in hooks:
            client.webhooks.update(id=hook.id, url=url, headers={"Authorization": f"Basic {token}"})
    except ApiError as e:
        raise SyncError(f"Label Studio refused to update the backend's webhook: {describe(e)}") from None


def count_predicted(client: LabelStudio, project_id: int, model_version: str) -> tuple[int, int]:
    """(tasks, tasks with a prediction from model_version)."""
    ids, predicted = predicted_ids(client, project_id, model_version)
    return len(ids), len(predicted)


def predicted_ids(client: LabelStudio, project_id: int, model_version: str) -> tuple[list[int], set[int]]:
    """(every task id, the ids of those with a prediction from model_version)."""
    ids, predicted = [], set()
    listed: Iterable[Any] = client.tasks.list(project=project_id, fields="all", page_size=500)
    for task in listed:
        ids.append(task.id)
        if any(field_of(p, "model_version") == model_version for p in task.predictions or []):
            predicted.add(task.id)
    return ids, predicted


def wait_while_busy(
    backend_url: str, project_id: int, timeout: float, auth: tuple[str, str] | None = None, progress: bool = True
) -> bool:
    """Wait until the backend runs no training or re-score for the project (its /versions); True if it was busy
    and is idle now, False if it never was busy or is still busy at the timeout."""
    deadline = time.monotonic() + timeout
    waited = False
    with tqdm(
        desc="backend busy (re-scoring the pool)", unit="s", disable=not progress, bar_format="{desc}: {elapsed}"
    ) as bar:
        while True:
            try:
                answer = requests.get(f"{backend_url}/versions", params={"project": project_id}, timeout=10, auth=auth)
            except requests.RequestException as e:
                raise SyncError(f"cannot reach the ML backend at {backend_url}: {describe(e)}") from None
            if not _json_or_empty(answer).get("busy"):
                return waited
            if time.monotonic() > deadline:
                return False
            waited = True
            time.sleep(1)
            bar.update(1)


def connect_backend(
    client: LabelStudio,
    project_id: int,
    backend_url: str,
    *,
    batch_size: int = 100,
    progress: bool = True,
    wait: float = 120.0,
    strategy: str | None = None,
    auth: tuple[str, str] | None = None,
    lanes: int | None = None,
    rescore_wait: float = 7200.0,
    page_url: str | None = None,
) -> ConnectResult:
    """Connect the backend, have every task predicted, make the backend's model version the project's, and make
    the queue tabs. `strategy` sets the project's ranking strategy in the backend (else the backend's
    RANK_STRATEGY applies); `lanes` how many annotators label at once from their own tab (backend/labelstudio/queue.py);
    `rescore_wait` how long to wait for a re-score the backend runs at connect before predicting what is left;
    `page_url` the backend's address as people's browsers reach it (default `backend_url`), for the project page's
    line in the project's description."""
    backend_url = backend_url.strip().rstrip("/")
    if not backend_url.startswith(("http://", "https://")):
        raise SyncError(f"--backend-url {backend_url!r} must start with http:// or https://")
    project = get_project(client, project_id)
    wait_for_backend(backend_url, wait, auth)
    # Asked before Label Studio is told about the backend: a config the backend cannot serve would otherwise
    # leave a half-connected backend in the project and a vaguer message.
    extra = {k: v for k, v in (("strategy", strategy), ("lanes", lanes)) if v} or None
    model_version = backend_model_version(
        backend_url, project_id, project.label_config or "", extra_params=extra, auth=auth
    )
    ml_id, created = _attach_backend(client, project_id, backend_url, extra, auth)
    if auth:
        _authorize_webhook(client, project_id, backend_url, auth)
    page = f"{(page_url or backend_url).strip().rstrip('/')}/projects/{project_id}"
    described = with_page_link(project.description or "", page)
    changed = {"description": described} if described != (project.description or "") else {}
    _update_project(client, project_id, sampling=SAMPLING, **changed)

    # A backend that calibrates on the project's own texts (its /setup asked for that) re-scores the whole pool under
    # the new version and publishes it as the project's: predicting meanwhile would score every text twice, once
    # under a version about to be replaced. So wait for it, then ask only for what it did not predict; the version
    # it answered /setup with may have moved meanwhile.
    if wait_while_busy(backend_url, project_id, rescore_wait, auth, progress):
        model_version = backend_model_version(
            backend_url, project_id, project.label_config or "", extra_params=extra, auth=auth
        )
    all_ids, done = predicted_ids(client, project_id, model_version)
    ids = [i for i in all_ids if i not in done]
    # Label Studio sends every selected task in one /predict call and gives up after 100 s, so ask in batches.
    with tqdm(total=len(ids), unit="task", desc="predict", disable=not progress or not ids) as bar:
        for start in range(0, len(ids), batch_size):
            batch = ids[start : start + batch_size]
            try:
                client.actions.create(
                    id="retrieve_tasks_predictions",
                    project=project_id,
                    selected_items={"all": False, "included": batch},
                    request_options={"timeout_in_seconds": 600, "max_retries": 0},
                )
            except ApiError as e:
                raise SyncError(f"Label Studio failed to retrieve predictions: {describe(e)}") from None
            bar.update(len(batch))
    total, predicted = count_predicted(client, project_id, model_version)

    # Connecting leaves project.model_version at the backend's title, and uncertainty sampling counts only
    # predictions whose version equals the project's. Label Studio accepts a version only once a prediction
    # carries it (or a backend is titled so), hence this comes after predicting.
    project_version = client.projects.get(id=project_id).model_version or ""
    if predicted and project_version != model_version:
        _update_project(client, project_id, model_version=model_version)
        project_version = model_version
    tabs = ls_tabs.ensure_queue_tabs(client, project_id, lanes or 1)  # its LabelStudioUnavailable is a LabelStudioError
    return ConnectResult(ml_id, created, model_version, project_version, total, predicted, tuple(tabs), page)


PAGE_LINE = "Model page (labelloop backend): "


def with_page_link(description: str, page: str) -> str:
    """The project's description with one line naming the backend's page of it: the team's own text is kept, a line
    an earlier connect wrote is replaced where it stands."""
    lines = description.splitlines()
    line = PAGE_LINE + page
    if line in lines:
        return description
    ours = [i for i, text in enumerate(lines) if text.startswith(PAGE_LINE)]
    if ours:
        lines[ours[0]] = line
        lines = [text for i, text in enumerate(lines) if i not in ours[1:]]
    else:
        lines += [""] * bool(lines and lines[-1].strip()) + [line]
    return "\n".join(lines)


def _update_project(client: LabelStudio, project_id: int, **fields: Any) -> None:
    try:
        client.projects.update(id=project_id, **fields)
    except ApiError as e:
        raise SyncError(f"Label Studio refused to update project {project_id}: {describe(e)}") from None


# ---------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportResult:
    tasks: int
    annotations: int


def export_json(client: LabelStudio, project_id: int, out: str | os.PathLike, timeout: int = 300) -> ExportResult:
    get_project(client, project_id)
    try:
        tasks = client.projects.exports.as_json(project_id, timeout=timeout)
    except ApiError as e:
        raise SyncError(f"Label Studio failed to export project {project_id}: {describe(e)}") from None
    try:
        write_atomically(out, lambda f: json.dump(tasks, f, ensure_ascii=False, indent=1))
    except OSError as e:
        raise SyncError(f"cannot write {out}: {e.strerror or e}") from None
    annotations = sum(len(t.get("annotations") or []) for t in tasks)
    return ExportResult(tasks=len(tasks), annotations=annotations)
