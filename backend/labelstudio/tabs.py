"""Data Manager tabs: the queue's lane tabs (what they hold: backend/labelstudio/queue.py), and tabs that hold exactly
a list of tasks and remember state of their own: the "Label issues" tab (backend/labelstudio/review.py) and the
finish audit's (backend/labelstudio/audit.py).

A tab is found by its title; what it must remember between runs is kept in its data under a key of the caller's,
which Label Studio 1.23.2 stores and returns as given: the project is the one place every admin's run reads, and
deleting the tab forgets it.
"""

from __future__ import annotations

from typing import Any, Iterable

from backend.labelstudio import queue
from backend.labelstudio.client import calling


def find(client: Any, project_id: int, title: str) -> Any | None:
    """The project's tab of that title, or None."""
    with calling(client, f"reading the tabs of project {project_id}"):
        views = [
            v
            for v in client.views.list(project=project_id)
            if isinstance(v.data, dict) and v.data.get("title") == title
        ]
    return views[0] if views else None


_ID_FILTER = {"filter": "filter:tasks:id", "operator": "equal", "type": "Number"}


def holding(title: str, task_ids: Iterable[int], **state: Any) -> dict:
    """A tab's data: the tasks `task_ids` in id order, and `state` kept beside them.

    One "equal" filter per task, OR-ed: Label Studio 1.23.2's API also takes an "in_list" operator, but its Data
    Manager does not know it and never finishes loading a project holding such a tab. No task has id 0, so an empty
    tab holds nothing (no filter at all would hold everything)."""
    items = [{**_ID_FILTER, "value": i} for i in sorted(task_ids)]
    return {
        "title": title,
        "ordering": ["tasks:id"],
        "filters": {"conjunction": "or", "items": items or [{**_ID_FILTER, "value": 0}]},
        **state,
    }


def held(data: dict) -> list[int]:
    """The task ids a tab written by `holding` holds (also one an earlier release wrote with "in_list")."""
    ids: list[int] = []
    for item in (data.get("filters") or {}).get("items") or []:
        if not isinstance(item, dict) or item.get("filter") != _ID_FILTER["filter"]:
            continue
        value = item.get("value")
        ids += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, int) and v > 0]
    return sorted(set(ids))


def write(client: Any, project_id: int, data: dict) -> int:
    """Make or refresh the tab titled data["title"]; its id."""
    view = find(client, project_id, data["title"])
    with calling(client, f"writing the {data['title']!r} tab of project {project_id}"):
        if view is None:
            return client.views.create(project=project_id, data=data).id
        return client.views.update(id=str(view.id), project=project_id, data=data).id


def delete(client: Any, project_id: int, title: str) -> bool:
    """Remove the tab of that title; whether there was one."""
    view = find(client, project_id, title)
    if view is None:
        return False
    with calling(client, f"deleting the {title!r} tab of project {project_id}"):
        client.views.delete(id=str(view.id))
    return True


def ensure_queue_tabs(client: Any, project_id: int, lanes: int) -> dict[str, int]:
    """Make the project's queue tabs match `lanes`: create the missing ones, rewrite the rest (an admin may have
    changed a filter), delete extra ones; {title: tab id}. Only tabs with the queue's titles are touched.
    Raises LabelStudioUnavailable if Label Studio cannot be read or written."""
    with calling(client, f"updating the queue tabs of project {project_id}"):
        found: dict[str, list[Any]] = {}
        for view in client.views.list(project=project_id):
            title = view.data.get("title") if isinstance(view.data, dict) else None
            if queue.is_queue_title(title):
                found.setdefault(title, []).append(view)
        tabs = {}
        for lane, title in enumerate(queue.tab_titles(lanes)):
            views = found.pop(title, [])
            data = queue.tab_data(lanes, lane)
            if views:
                tabs[title] = client.views.update(id=str(views[0].id), project=project_id, data=data).id
                found[f"duplicates of {title}"] = views[1:]  # two backends or a retry made it twice
            else:
                tabs[title] = client.views.create(project=project_id, data=data).id
        for stale in found.values():
            for view in stale:
                client.views.delete(id=str(view.id))
    return tabs
