"""backend/labelstudio/tabs.py: the queue's tabs brought in line with the lanes, on a Label Studio kept in a dict."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from support.views import FakeViews

from backend.labelstudio import queue as ls_queue
from backend.labelstudio import tabs
from backend.labelstudio.client import LabelStudioUnavailable


def test_the_queue_tabs_follow_the_lanes_and_other_tabs_are_left_alone():
    client = SimpleNamespace(views=FakeViews(["Label issues", "Model queue notes"]))
    made = tabs.ensure_queue_tabs(client, 1, 3)
    assert sorted(made) == ls_queue.tab_titles(3)
    assert client.views.titles() == sorted(["Label issues", "Model queue notes", *ls_queue.tab_titles(3)])
    assert all(client.views.held[i].data == ls_queue.tab_data(3, lane) for lane, i in enumerate(made.values()))

    assert tabs.ensure_queue_tabs(client, 1, 3) == made  # again: the same tabs, rewritten in place

    # Another lane count names its tabs anew (k/2, not k/3): the three-lane tabs go.
    two = tabs.ensure_queue_tabs(client, 1, 2)
    assert not set(two.values()) & set(made.values())
    assert client.views.held[two["Model queue 1/2"]].data == ls_queue.tab_data(2, 0)
    assert client.views.titles() == sorted(["Label issues", "Model queue notes", *ls_queue.tab_titles(2)])


def test_a_tab_made_twice_is_kept_once_and_a_changed_filter_rewritten():
    client = SimpleNamespace(views=FakeViews(["Model queue", "Model queue"]))
    first = min(client.views.held)
    client.views.held[first].data["filters"] = {"conjunction": "and", "items": ["an admin's filter"]}
    assert tabs.ensure_queue_tabs(client, 1, 1) == {"Model queue": first}
    assert list(client.views.held) == [first] and client.views.held[first].data == ls_queue.tab_data(1, 0)


def test_a_failure_is_one_line_naming_the_step():
    def refused(project):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    client = SimpleNamespace(views=SimpleNamespace(list=refused))
    with pytest.raises(LabelStudioUnavailable, match=r"\(updating the queue tabs of project 4\): connection refused"):
        tabs.ensure_queue_tabs(client, 4, 2)


def test_a_tab_holding_tasks_uses_only_operators_the_data_manager_knows():
    # Label Studio 1.23.2's Data Manager never finishes loading a project whose tab uses "in_list" (its API takes it).
    data = tabs.holding("Label issues", [5, 3])
    assert {item["operator"] for item in data["filters"]["items"]} == {"equal"}
    assert data["filters"]["conjunction"] == "or" and tabs.held(data) == [3, 5]
    empty = tabs.holding("Label issues", [])
    assert tabs.held(empty) == [] and empty["filters"]["items"]  # a filter no task passes, not no filter
    earlier = {"filters": {"items": [{"filter": "filter:tasks:id", "operator": "in_list", "value": [9, 4]}]}}
    assert tabs.held(earlier) == [4, 9]
