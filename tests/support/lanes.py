"""Which queue lane a prediction score puts a task in, read as Label Studio reads it: from the tabs' filters."""

from __future__ import annotations

from functools import lru_cache

from backend.labelstudio import queue as ls_queue


@lru_cache(maxsize=None)
def _windows(lanes: int) -> tuple[tuple[float, float], ...]:
    """Each lane's tab filter: the (min, max) score range it shows."""
    values = [ls_queue.tab_data(lanes, lane)["filters"]["items"][0]["value"] for lane in range(lanes)]
    return tuple((v["min"], v["max"]) for v in values)


def lane_shown(score: float, lanes: int) -> int:
    """The one lane whose tab's score filter (an "in" range, ends included) shows a task of this score; an
    AssertionError if no tab or several show it."""
    if lanes <= 1:
        return 0
    showing = [lane for lane, (low, high) in enumerate(_windows(lanes)) if low <= round(score, 6) <= high]
    assert len(showing) == 1, f"score {score} is shown by the tabs of lanes {showing}"
    return showing[0]
