"""The loop on a multi-question config, simulated (backend/bench/question_loop.py, `labelloop simulate-questions`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import ROOT, tiny_predictor
from support.shapes import mismatches

from backend.bench import question_loop
from backend.bench.results import QuestionsResults
from backend.cli import simulate_questions
from backend.labelstudio import schema as schemas

FACETS = ROOT / "label_config" / "review_facets.xml"
SAMPLE = ROOT / "guidelines" / "samples" / "review_facets.jsonl"
GUIDELINES = ROOT / "guidelines" / "review_facets.md"
CONFIG = schemas.parse_config(FACETS.read_text())


def _features(n: int = 120, seed: int = 0) -> question_loop.Features:
    """Features where every question is learnable from the vectors and the LLM guesses at random."""
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(n, 6)).astype(np.float32)
    y = {
        "sentiment": (states[:, 0] > 0).astype(int) + (states[:, 0] > 1.2).astype(int),
        "aspects": (states[:, 1:5] > 0).astype(int),
        "spoiler": (states[:, 5] > 0.5).astype(int),
    }
    llm = {q.from_name: rng.dirichlet(np.ones(len(q.labels)), size=n) for q in CONFIG.questions}
    llm["aspects"] = rng.uniform(size=(n, 4))
    vectors = {"states": states, "minilm": rng.normal(size=(n, 4)).astype(np.float32)}
    return question_loop.Features(vectors, llm, y, "test", 0.0)


def test_a_loop_learns_every_question_and_steps_by_batch():
    f = _features()
    pool, test = np.arange(80), np.arange(80, 120)
    steps = question_loop.run_one(CONFIG, f, pool, test, ranking="across", seed=0, seed_size=10, batch=15, budget=60)
    assert [s["labels"] for s in steps] == [10, 25, 40, 55, 60]
    assert set(steps[0]["macro_f1"]) == {"sentiment", "aspects", "spoiler"}
    for name in ("sentiment", "aspects", "spoiler"):
        assert steps[-1]["macro_f1"][name] > steps[0]["macro_f1"][name] - 0.05, (name, steps)
    assert steps[-1]["mean"] > 0.6
    # The rankings label different tasks; random is reproducible by seed.
    first = question_loop.run_one(CONFIG, f, pool, test, ranking="first", seed=0, seed_size=10, batch=15, budget=40)
    assert first[-1]["labels"] == 40 and first != steps[: len(first)]
    again = question_loop.run_one(CONFIG, f, pool, test, ranking="random", seed=3, seed_size=10, batch=15, budget=40)
    assert again == question_loop.run_one(
        CONFIG, f, pool, test, ranking="random", seed=3, seed_size=10, batch=15, budget=40
    )
    with pytest.raises(question_loop.QuestionLoopError, match="unknown ranking"):
        question_loop.run_one(CONFIG, f, pool, test, ranking="best", seed=0, seed_size=10, batch=15, budget=40)


def test_labels_to_reach_and_the_summary():
    steps = [{"labels": 10, "mean": 0.5}, {"labels": 20, "mean": 0.71}, {"labels": 30, "mean": 0.7}]
    assert question_loop.labels_to_reach(steps, 0.7) == 20
    assert question_loop.labels_to_reach(steps, 0.8) is None
    result = question_loop.simulate(CONFIG, _features(), 80, seeds=2, seed_size=10, batch=20, budget=50, progress=False)
    assert mismatches(json.loads(json.dumps(result)), QuestionsResults) == []
    assert set(result["rankings"]) == {"across", "learning", "first", "random"}
    assert result["target"] == pytest.approx(0.95 * result["full_pool"]["mean"], abs=1e-4)
    for r in result["rankings"].values():
        assert [s["labels"] for s in r["curve"]] == [10, 30, 50] and len(r["labels_to_target"]) == 2
    with pytest.raises(question_loop.QuestionLoopError, match="leave some to test"):
        question_loop.simulate(CONFIG, _features(), 120, seeds=1, seed_size=10, batch=20, budget=50)


def test_the_command_runs_on_a_sample_with_the_tiny_model(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        simulate_questions, "load_model", lambda settings: tiny_predictor(guidelines_path=settings.guidelines)
    )
    out = tmp_path / "out"
    args = ["--sample", str(SAMPLE), "--config", str(FACETS), "--guidelines", str(GUIDELINES)]
    args += ["--pool", "40", "--test", "30", "--seeds", "1", "--batch", "10", "--budget", "30", "--quiet"]
    assert simulate_questions.main(args + ["--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["pool"] == 40 and result["test"] == 30 and result["model"] == "tiny-qwen2"
    assert set(result["zero_shot"]) == {"sentiment", "aspects", "spoiler"}
    assert [s["labels"] for s in result["rankings"]["across"]["curve"]] == [10, 20, 30]
    assert (out / "questions.png").stat().st_size > 1000
    assert "to target" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, says",
    [
        (["--corpus", "nope"], "unknown corpus 'nope'"),
        (["--sample", str(SAMPLE)], "needs --config"),
        (
            ["--sample", str(SAMPLE), "--config", str(FACETS), "--guidelines", str(GUIDELINES), "--pool", "500"],
            "need more",
        ),
        (["--rankings", "best"], "unknown ranking 'best'"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, says):
    assert simulate_questions.main(extra + ["--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and says in err[0], err
