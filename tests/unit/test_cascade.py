"""The cascade's arithmetic (backend/bench/cascade.py) on made-up answers: which rows the larger model takes, what
each share costs, and the rule that picks the default share from the pool splits."""

from __future__ import annotations

import numpy as np
import pytest

from backend.bench import cascade


def answers(model: str, pool: np.ndarray, test: np.ndarray, seconds: float) -> cascade.ModelAnswers:
    return cascade.ModelAnswers(model, pool, test, seconds, ("domain",))


def test_the_larger_model_answers_the_rows_the_smaller_is_least_sure_of():
    small = np.array([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4], [0.2, 0.8]])
    large = np.array([[0.1, 0.9]] * 4)
    out = cascade.cascade(small, large, 0.5)
    assert out.tolist() == [[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.2, 0.8]]  # margins 0.1 and 0.2 replaced
    assert cascade.cascade(small, large, 0.0).tolist() == small.tolist()
    assert cascade.cascade(small, large, 1.0).tolist() == large.tolist()
    assert small[1].tolist() == [0.55, 0.45]  # the input is left alone


def test_each_share_costs_the_smaller_pass_plus_its_share_of_the_larger():
    y = np.array([0, 1, 0, 1])
    small = answers("0.5b", np.eye(2)[[0, 0, 0, 1]] * 0.6 + 0.2, np.eye(2)[[0, 0, 0, 1]] * 0.6 + 0.2, 0.1)
    large = answers("1.5b", np.eye(2)[y] * 0.8 + 0.1, np.eye(2)[y] * 0.8 + 0.1, 0.3)
    points = cascade.curve(small, large, y, y, shares=(0.5,))
    assert [p.share for p in points] == [0.0, 0.5, 1.0]
    assert [p.cost for p in points] == pytest.approx([1.0, 2.5, 4.0])
    assert points[0].test_macro_f1 < points[-1].test_macro_f1 == 1.0


def point(share: float, f1: float, cost: float) -> cascade.Point:
    return cascade.Point(share, f1, f1, cost)


def test_the_default_share_keeps_most_of_the_gain_within_the_cost():
    curve = [
        point(0.0, 0.50, 1.0),
        point(0.1, 0.56, 1.3),
        point(0.2, 0.58, 1.6),
        point(0.3, 0.60, 1.9),
        point(1.0, 0.60, 4.0),
    ]
    assert cascade.choose_share([curve]) == 0.2  # 0.08 of the 0.10 gain; 0.1 keeps only 60%
    cheap = [
        point(0.0, 0.5, 1.0),
        point(0.1, 0.51, 1.3),
        point(0.2, 0.52, 1.6),
        point(0.3, 0.6, 1.9),
        point(1.0, 0.6, 4),
    ]
    assert cascade.choose_share([cheap]) == 0.2  # none keeps 70% within 1.6x: the costliest share within it
    no_gain = [point(0.0, 0.6, 1.0), point(0.1, 0.6, 1.3), point(0.2, 0.6, 1.6), point(1.0, 0.55, 4.0)]
    assert cascade.choose_share([no_gain]) == 0.1  # the 1.5B gains nothing: as little of it as the rule allows
