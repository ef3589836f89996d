"""The annotators' queue in Label Studio: the ranking strategy's order served to every annotator of a project.

How Label Studio 1.23.2 picks the next task (projects/functions/next_task.py, checked on the wire):
- "Label All Tasks" (`/next` without a Data Manager queue) with uncertainty sampling serves the lowest score of the
  project's model_version first and skips tasks locked by another annotator. That holds for any number of
  annotators while the project has at most one *member*; the open-source edition never records members.
- With more than one member (Enterprise teams, or project memberships) it picks a random task instead: the
  strategy's order is lost.
- "Label Tasks As Displayed" in a Data Manager tab serves the tab's first unlabeled task in the tab's order, but
  ignores task locks: annotators sharing one tab are all served the same task.

Hence lanes. A project with N > 1 lanes gets N tabs, "Model queue 1/N" .. "N/N", one per annotator. The pool's
order is dealt round robin (rank r goes to lane r mod N) and written into the prediction score: lane k's scores lie
in [k/N, (k+1)/N), in the strategy's order (Label Studio drops predictions scored outside [0, 1] without an error),
so each tab's filter (its score range) holds its own tasks and its ordering follows the strategy.
Each annotator's next task is then among the N most urgent ones and never one another annotator is served. The
filters stay fixed: a re-score rewrites the scores, so an open tab follows it without reloading. With one lane the
score is the plain priority and the single tab "Model queue" shows the order that "Label All Tasks" serves.

This module is the arithmetic alone; backend/labelstudio/tabs.py writes the tabs into Label Studio.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

import numpy as np

from backend.errors import LabelloopError

TITLE = "Model queue"
MAX_LANES = 50
_OUR_TITLE = re.compile(re.escape(TITLE) + r"( \d+/\d+)?")
_STEP = 1e-6  # scores are written rounded to 6 decimals


class LanesError(LabelloopError, ValueError):
    """A lane count that cannot be served."""

    http_status = 400


def check_lanes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LANES:
        raise LanesError(f"lanes must be a whole number from 1 to {MAX_LANES} (one per annotator), not {value!r}")
    return value


def _width(lanes: int) -> float:
    # A lane's share of [0, 1], cut at a 6-decimal value so the rounded scores of one lane never meet the next's.
    return int(1 / lanes / _STEP) * _STEP


def _in_lane(priority, lane, lanes: int):
    """Priority in [0, 1] → a score strictly inside lane `lane`'s range (the whole [0, 1] for one lane)."""
    if lanes <= 1:
        return priority
    width = _width(lanes)
    return lane * width + _STEP + priority * (width - 3 * _STEP)


def lane_scores(priority: np.ndarray, lanes: int) -> np.ndarray:
    """Prediction scores for a ranked pool (priority in [0, 1], lower = sooner): rank r goes to lane r mod `lanes`."""
    priority = np.asarray(priority, dtype=float)
    lane = np.zeros(priority.size)
    lane[np.argsort(priority, kind="stable")] = np.arange(priority.size) % max(lanes, 1)
    return _in_lane(priority, lane, lanes)


def task_score(priority: float, task_id: Any, lanes: int) -> float:
    """The score of a task predicted before the pool is ranked: its lane comes from its id."""
    return float(_in_lane(float(priority), task_id % lanes if isinstance(task_id, int) and lanes > 1 else 0, lanes))


def tab_titles(lanes: int) -> list[str]:
    return [TITLE] if lanes <= 1 else [f"{TITLE} {i + 1}/{lanes}" for i in range(lanes)]


def tab_data(lanes: int, lane: int) -> dict:
    """A tab's filters and ordering, as the Data Manager stores them and sends them with "Label Tasks As Displayed"."""
    items = []
    if lanes > 1:
        low = round(lane * _width(lanes), 6)
        items.append(
            {
                "filter": "filter:tasks:predictions_score",
                "operator": "in",
                "type": "Number",
                "value": {"min": low, "max": round(low + _width(lanes) - _STEP, 6)},
            }
        )
    return {
        "title": tab_titles(lanes)[lane],
        "ordering": ["tasks:predictions_score"],
        "filters": {"conjunction": "and", "items": items},
    }


def is_queue_title(title: Any) -> TypeGuard[str]:
    """Whether a tab's title is one of the queue's, for any number of lanes."""
    return isinstance(title, str) and _OUR_TITLE.fullmatch(title) is not None
