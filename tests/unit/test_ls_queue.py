"""Queue lanes: the pool's order dealt round robin into score ranges that the Data Manager tabs filter on."""

from __future__ import annotations

import numpy as np
import pytest
from support.lanes import lane_shown

from backend.labelstudio import queue as ls_queue


@pytest.mark.parametrize("lanes", [1, 2, 3, 7, 50])
def test_rank_r_lands_in_lane_r_mod_n_in_order_and_inside_its_tab(lanes):
    rng = np.random.default_rng(lanes)
    priority = rng.permutation(1000) / 999  # what strategies.priority_scores gives: ranks spread over [0, 1]
    scores = np.round(ls_queue.lane_scores(priority, lanes), 6)  # as written to Label Studio
    assert scores.min() >= 0 and scores.max() <= 1
    order = np.argsort(priority)
    lane = np.array([lane_shown(s, lanes) for s in scores])  # exactly one tab shows each task
    assert list(lane[order]) == [r % lanes for r in range(1000)]
    for k in range(lanes):
        mine = order[lane[order] == k]
        assert np.all(np.diff(scores[mine]) > 0), "a lane lost the strategy's order"
    if lanes == 1:
        assert ls_queue.tab_data(1, 0)["filters"]["items"] == [] and np.array_equal(scores, np.round(priority, 6))


def test_a_task_predicted_before_the_ranking_gets_its_lane_from_its_id():
    assert lane_shown(ls_queue.task_score(0.5, 7, 3), 3) == 1
    assert lane_shown(ls_queue.task_score(0.99, "no id", 3), 3) == 0
    assert ls_queue.task_score(0.25, 7, 1) == 0.25


def test_tabs_are_named_per_lane_and_only_ours_are_touched():
    assert ls_queue.tab_titles(1) == ["Model queue"]
    assert ls_queue.tab_titles(3) == ["Model queue 1/3", "Model queue 2/3", "Model queue 3/3"]
    assert ls_queue.is_queue_title("Model queue 2/3") and not ls_queue.is_queue_title("Model queue notes")
    for bad in (0, -1, 51, 2.5, "3", True, None):
        with pytest.raises(ls_queue.LanesError, match="from 1 to 50"):
            ls_queue.check_lanes(bad)
