"""Which queue lane a prediction score puts a task in, read as Label Studio reads it: from the tabs' filters."""

from __future__ import annotations

from backend.labelstudio import queue as ls_queue


def lane_shown(score: float, lanes: int) -> int:
    """The one lane whose tab's score filter (an "in" range, ends included) shows a task of this score; an
    AssertionError if no tab or several show it."""
    if lanes <= 1:
        return 0
    showing = []
    for lane in range(lanes):
        window = ls_queue.tab_data(lanes, lane)["filters"]["items"][0]["value"]
        if window["min"] <= round(score, 6) <= window["max"]:
            showing.append(lane)
    assert len(showing) == 1, f"score {score} is shown by the tabs of lanes {showing}"
    return showing[0]
