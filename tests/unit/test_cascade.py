"""The cascade's trade-off arithmetic (backend/bench/cascade.py) on made-up inputs: which rows the larger model takes,
what the student learns without labels, what each share costs, and the rules that pick the student's C and the
default share from the pools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.shapes import mismatches

from backend.bench import cascade
from backend.bench.results import CascadeResults
from backend.bench.simulation import Inputs


def made_up(seed: int = 0, n_pool: int = 300, n_test: int = 120) -> cascade.Measured:
    """Two-label texts whose truth the states carry: the 1.5B gets 90% right, the 0.5B 60%; the sample is the
    pool's first 200 rows."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        states = rng.normal(size=(n, 8)) + 1.5 * np.eye(8)[y]
        big = np.where(rng.random(n) < 0.9, y, 1 - y)
        small = np.where(rng.random(n) < 0.6, y, 1 - y)
        return y, states, np.eye(2)[big] * 0.7 + 0.15, np.eye(2)[small] * rng.uniform(0.1, 0.9, (n, 1)) + 0.05

    pool_y, pool_h, pool_big, pool_small = split(n_pool)
    test_y, test_h, test_big, test_small = split(n_test)
    words = dict(pool_x=rng.normal(size=(n_pool, 4)), test_x=rng.normal(size=(n_test, 4)))  # MiniLM's place
    base = dict(labels=("A", "B"), pool_y=pool_y, test_y=test_y, **words)
    small = Inputs(
        **base,
        pool_llm=pool_small,
        test_llm=test_small,
        pool_h=pool_h,
        test_h=test_h,
        info={"llm_state_layer": 3, "calibration": "domain"},
    )
    large = Inputs(
        **base,
        pool_llm=pool_big,
        test_llm=test_big,
        pool_h=pool_h[:, ::-1],
        test_h=test_h[:, ::-1],
        info={"calibration": "domain"},
    )
    return cascade.Measured(small, large, np.arange(200), (0.1, 0.3))


def test_the_larger_model_answers_the_rows_below_the_threshold():
    first = np.array([[0.9, 0.1], [0.55, 0.45], [0.6, 0.4], [0.2, 0.8]])
    second = np.array([[0.1, 0.9]] * 4)
    assert cascade.refine(first, second, 0.3).tolist() == [[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.2, 0.8]]
    assert cascade.refine(first, second, 0.0).tolist() == first.tolist()
    assert first[1].tolist() == [0.55, 0.45]  # the input is left alone


def test_the_student_learns_the_larger_models_answers_from_the_states_without_labels():
    m = made_up()
    points = cascade.curve(m, 0.1, shares=(0.2,))
    assert [p.share for p in points] == [0.0, 0.2, 1.0]
    assert [p.cost for p in points] == pytest.approx([1.0, 1.6, 4.0])
    small = cascade.baselines(m)["0.5b"]
    student, _, large = points
    assert student.test_macro_f1 > small.test_macro_f1 + 0.15  # read from the states, not the 0.5B's answers
    assert large.test_macro_f1 == cascade.baselines(m)["1.5b"].test_macro_f1  # share 1: the 1.5B on every text
    assert len(m.held) == 100  # the pool's figures skip the sample the student was fitted on


def test_the_share_of_texts_refined_follows_the_out_of_fold_quantile():
    m = made_up(1)
    reader, held_out = cascade.taught(m, 0.1)
    served = cascade.served(m, reader, held_out, 0.3)
    refined = (served.test_llm != reader.apply(m.small.test_h)).any(axis=1).mean()
    assert 0.15 <= refined <= 0.45 and served.shifts == {}
    assert np.array_equal(served.pool_h, m.small.pool_h)  # the loop reads the 0.5B's states


def point(share: float, f1: float, cost: float) -> cascade.Point:
    return cascade.Point(share, f1, f1, cost)


def test_the_default_share_keeps_most_of_the_gain_within_the_cost():
    small = [point(0.0, 0.50, 1.0)]
    curve = [
        point(0.0, 0.53, 1.0),
        point(0.1, 0.56, 1.3),
        point(0.2, 0.58, 1.6),
        point(0.3, 0.60, 1.9),
        point(1.0, 0.60, 4.0),
    ]
    assert cascade.choose_share([curve], small) == 0.2  # 0.08 of the 0.5B's 0.10 gap; 0.1 keeps only 60%
    cheap = [point(0.0, 0.5, 1.0), point(0.1, 0.52, 1.3), point(0.2, 0.51, 1.6), point(0.3, 0.6, 1.9)]
    cheap.append(point(1.0, 0.6, 4))
    assert cascade.choose_share([cheap], small) == 0.1  # none keeps 70% within 1.6x: the best within it
    no_gain = [point(0.0, 0.6, 1.0), point(0.1, 0.6, 1.3), point(0.2, 0.6, 1.6), point(1.0, 0.45, 4.0)]
    assert cascade.choose_share([no_gain], small) == 0.1  # the 1.5B gains nothing: as little of it as allowed


def test_the_students_c_is_the_best_on_the_pools_the_smaller_on_a_tie():
    assert cascade.choose_c({0.01: [0.6, 0.7], 0.1: [0.62, 0.7], 1.0: [0.5, 0.5]}) == 0.1
    assert cascade.choose_c({0.01: [0.6], 0.1: [0.6]}) == 0.01


def test_the_command_writes_the_table_the_plot_and_the_rules_choices(tmp_path, monkeypatch, capsys):
    from backend.bench import datasets
    from backend.cli import bench_cascade

    monkeypatch.setattr(datasets, "source", lambda pool, test, corpus_name: corpus_name)  # the name's length seeds
    monkeypatch.setattr(cascade, "measure", lambda source, pool, test: made_up(len(source)))
    assert bench_cascade.main(["--corpus", "a,bb", "--seeds", "1", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert mismatches(results, CascadeResults) == []
    assert results["student_c"] in cascade.STUDENT_CS and results["default_share"] in cascade.SHARES
    assert set(results["corpora"]) == {"a", "bb"}
    points = results["corpora"]["a"]["points"]
    assert [p["share"] for p in points] == [0.0, *cascade.SHARES, 1.0]
    assert all(p["after_labels"] is not None for p in points)
    assert (tmp_path / "tradeoff.png").stat().st_size > 0
    assert "0.5B alone" in capsys.readouterr().out


def test_a_teams_file_is_read_before_any_model_and_a_bad_one_is_one_line(tmp_path, monkeypatch, capsys):
    from backend.bench import datasets
    from backend.cli import bench_cascade

    seen = {}

    def source(pool, test, data=None, config=None, guidelines=None):
        seen.update(data=data, config=config, pool=pool, test=test)
        return "team"

    monkeypatch.setattr(datasets, "source", source)
    monkeypatch.setattr(cascade, "measure", lambda source, pool, test: made_up(3))
    args = ["--data", "team.csv", "--config", "c.xml", "--pool", "400", "--seeds", "1", "--out", str(tmp_path)]
    assert bench_cascade.main(args) == 0
    assert seen == {"data": Path("team.csv"), "config": Path("c.xml"), "pool": 400, "test": 250}
    assert set(json.loads((tmp_path / "results.json").read_text())["corpora"]) == {"team"}
    capsys.readouterr()

    monkeypatch.undo()
    (tmp_path / "empty.csv").write_text("")
    assert bench_cascade.main(["--data", str(tmp_path / "empty.csv"), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), err
    assert bench_cascade.main(["--config", "c.xml", "--out", str(tmp_path / "o")]) != 0
    assert "go with --data" in capsys.readouterr().err
