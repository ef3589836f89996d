"""The flagged labels back in Label Studio: a Data Manager tab holding exactly the flagged tasks, and what a reviewer
did with them (labelloop label-issues --project ID --review).

The tab ("Label issues") filters on the flagged task ids; a reviewer opens it, and for each task either changes
the label (relabeled: judged again next time like any label) or saves it unchanged (confirmed: not flagged again
while the label stays the same). Which is which is read from the task's annotations: a flagged task whose
annotations changed since it was flagged (a new one, or one saved again) and whose label did not was confirmed.

What the tab needs to remember between runs (the labels flagged, each task's annotations when it was flagged, the
labels confirmed) is kept in the tab itself, under STATE_KEY of its data (backend/labelstudio/tabs.py), per question
of the config: a task flagged on any question is in the tab, and a confirmation is of one question's label (a
multi-label question's set as one string, Schema.key).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from backend.labelstudio import client as ls_client
from backend.labelstudio import model_labels, tabs

TITLE = "Label issues"
STATE_KEY = "labelloop_label_issues"


def download_export(client: Any, project_id: int, path: Path) -> list[dict]:
    """The project's full JSON export (every task), written to `path` and returned."""
    answer = ls_client.request(
        client,
        "GET",
        f"api/projects/{project_id}/export",
        f"exporting project {project_id}",
        params={"exportType": "JSON", "download_all_tasks": "true"},
        request_options={"timeout_in_seconds": 600},
    )
    tasks = answer.json()
    path.write_text(json.dumps(tasks))
    return tasks


def fingerprints(tasks: Sequence[dict]) -> dict[int, str]:
    """Per task: a digest of its people's annotations (id and last save), which any new or re-saved one changes."""
    out = {}
    for task in tasks:
        if not isinstance(task, dict) or not isinstance(task.get("id"), int):
            continue
        marks = sorted(
            (str(a.get("id")), str(a.get("updated_at")))
            for a in task.get("annotations") or []
            if isinstance(a, dict) and not model_labels.is_model_annotation(a)
        )
        out[task["id"]] = hashlib.sha256(json.dumps(marks).encode()).hexdigest()[:16]
    return out


def read_state(client: Any, project_id: int) -> dict:
    """What the last run left: {"flagged": {task: {"label", "seen"}}, "confirmed": {task: label}} of the config's first
    question, and under "questions" the same by question (task ids as str; see question_state)."""
    view = tabs.find(client, project_id, TITLE)
    state = view.data.get(STATE_KEY) if view is not None else None
    if not isinstance(state, dict):
        return {"flagged": {}, "confirmed": {}, "questions": {}}
    per = state.get("questions")
    per = per if isinstance(per, dict) else {}
    return {
        "flagged": dict(state.get("flagged") or {}),
        "confirmed": dict(state.get("confirmed") or {}),
        "questions": {
            name: {"flagged": dict(q.get("flagged") or {}), "confirmed": dict(q.get("confirmed") or {})}
            for name, q in per.items()
            if isinstance(q, dict)
        },
    }


def waiting(client: Any, project_id: int) -> dict | None:
    """The project's "Label issues" tab as a team lead sees it: its id and how many tasks it holds; None without one."""
    view = tabs.find(client, project_id, TITLE)
    if view is None:
        return None
    return {"id": view.id, "tasks": len(tabs.held(view.data))}


def question_state(state: Mapping, name: str, first: str) -> dict:
    """One question's part of what the last run left: its own under "questions"; a tab written before several
    questions were judged holds the first question's at the top."""
    per = state.get("questions") or {}
    if name in per:
        return per[name]
    if not per and name == first:
        return {"flagged": state["flagged"], "confirmed": state["confirmed"]}
    return {"flagged": {}, "confirmed": {}}


def confirmed_labels(state: Mapping, seen: Mapping[int, str], given: Mapping[int, str]) -> dict[int, str]:
    """Labels confirmed so far: earlier confirmations still standing, and flagged labels saved again unchanged."""
    confirmed = {int(t): label for t, label in state["confirmed"].items() if given.get(int(t)) == label}
    for task, record in state["flagged"].items():
        task = int(task)
        if task in seen and seen[task] != record.get("seen") and given.get(task) == record.get("label"):
            confirmed[task] = record["label"]
    return confirmed


def tab_data(
    flagged: Mapping[str, Sequence[tuple[int, str]]],
    seen: Mapping[int, str],
    confirmed: Mapping[str, Mapping[int, str]],
    first: str,
) -> dict:
    """The tab's data: the tasks flagged on any question (`flagged`: question -> (task, label) pairs; a multi-label
    set as its key), each question's flagged labels and confirmations under "questions", and the first question's
    also at the top, where a tab of one question keeps them."""
    per = {
        name: {
            "flagged": {str(t): {"label": label, "seen": seen.get(int(t))} for t, label in flagged.get(name, ())},
            "confirmed": {str(t): label for t, label in confirmed.get(name, {}).items()},
        }
        for name in dict.fromkeys([*flagged, *confirmed])
    }
    top = per.get(first, {"flagged": {}, "confirmed": {}})
    tasks = {int(t) for pairs in flagged.values() for t, _ in pairs}
    return tabs.holding(TITLE, tasks, **{STATE_KEY: {**top, "questions": per}})


def write_tab(
    client: Any,
    project_id: int,
    flagged: Mapping[str, Sequence[tuple[int, str]]],
    seen: Mapping[int, str],
    confirmed: Mapping[str, Mapping[int, str]],
    first: str,
) -> int:
    """Make or refresh the tab so it holds exactly the flagged tasks; its id."""
    return tabs.write(client, project_id, tab_data(flagged, seen, confirmed, first))
