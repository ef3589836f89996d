"""Adding a strategy is one registry entry: every part that names strategies reads backend/ranking/strategies.py."""

from __future__ import annotations

import numpy as np
import pytest

from backend.bench import simulation
from backend.loop import rescoring
from backend.loop.project_loop import LoopError, check_strategy
from backend.ranking import strategies
from backend.settings import Settings, SettingsError


def _first_dimension(x: strategies.Inputs) -> np.ndarray:
    return np.asarray(x.embeddings, dtype=np.float64)[:, 0].copy()


TOY = strategies.Strategy("toy", "the embeddings' first dimension", _first_dimension, needs_embeddings=True)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(strategies.REGISTRY, "toy", TOY)
    return TOY


class FakeText:
    """Records what the rescoring path asks the text features for."""

    def __init__(self):
        self.asked: list[str] = []

    @property
    def embedder(self):
        self.asked.append("embeddings")
        return self

    def encode(self, texts):
        return np.arange(len(texts) * 2, dtype=np.float32).reshape(len(texts), 2)

    def judged(self, name, texts):
        self.asked.append(f"judged {name}")
        return np.zeros(len(texts))

    def llm_answers(self, config, texts, pool):
        self.asked.append("llm_probs")
        return {"q": np.full((len(texts), 2), 0.5)}, "llm-v1"


def test_rank_serves_a_registered_strategy(toy):
    probs = np.full((4, 2), 0.5)
    emb = np.array([[3.0, 0.0], [1.0, 1.0], [4.0, 2.0], [2.0, 5.0]])
    u = strategies.rank("toy", probs, emb, labeled_idx=[2])
    np.testing.assert_array_equal(u, [3.0, 1.0, -np.inf, 2.0])
    with pytest.raises(ValueError, match="'toy' utility needs embeddings"):
        strategies.rank("toy", probs)
    assert strategies.pointwise_priority("toy", probs).tolist() == (1.0 - strategies.margin(probs)).tolist()


def test_a_registered_strategy_can_be_fused(toy):
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    emb = np.array([[0.0, 1.0], [2.0, 1.0], [1.0, 1.0]])
    u = strategies.rank("hybrid", probs, emb, weights={"toy": 1.0})
    np.testing.assert_allclose(u, [0.0, 1.0, 0.5])


def test_the_simulation_accepts_a_registered_strategy(toy):
    assert "toy" in simulation.known_strategies()
    simulation.check_strategies(["toy", "margin"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = np.arange(40) % 2
    llm = np.where(np.eye(2)[y] > 0, 0.8, 0.2)
    inputs = simulation.Inputs(("a", "b"), x, llm, y, x[:10], llm[:10], y[:10])
    run = simulation.simulate(inputs, "classifier", "toy", seed=0, seed_size=4, batch=4, budget=12)
    picked = run.order[4:8]  # after the random seed set, the toy's top four: the largest first dimensions
    unlabeled = np.setdiff1d(np.arange(40), run.order[:4])
    assert set(picked.tolist()) == set(unlabeled[np.argsort(-x[unlabeled, 0])[:4]].tolist())


def test_settings_and_the_loop_accept_a_registered_strategy(toy, monkeypatch):
    monkeypatch.setenv("RANK_STRATEGY", "toy")
    assert Settings.from_env().rank_strategy == "toy"
    assert check_strategy("toy") == "toy"


def test_unknown_names_are_refused_with_the_known_ones(monkeypatch):
    with pytest.raises(ValueError, match="unknown strategy 'bald'; choose one of random, least_confidence"):
        strategies.get("bald")
    monkeypatch.setenv("RANK_STRATEGY", "bald")
    with pytest.raises(SettingsError, match="'bald'.*margin"):
        Settings.from_env()
    with pytest.raises(LoopError, match="unknown ranking strategy 'bald'"):
        check_strategy("bald")
    with pytest.raises(simulation.SimulationError, match="unknown strategy bald"):
        simulation.check_strategies(["bald"])


@pytest.mark.parametrize(
    "name, asked",
    [
        ("toy", ["embeddings"]),
        ("margin", []),
        ("hybrid", ["embeddings"]),
        ("committee", ["llm_probs"]),
        ("llm_informative", ["judged llm_informative"]),
    ],
)
def test_rescoring_computes_only_what_the_strategy_needs(toy, name, asked):
    text = FakeText()
    needs = rescoring.strategy_inputs(strategies.get(name), text, None, ["a", "b", "c"], None)
    assert text.asked == asked
    assert (needs["embeddings"] is not None) == ("embeddings" in asked)
    assert (needs["llm_probs"] is not None) == ("llm_probs" in asked)
    assert (needs["extra_utilities"] is not None) == any(a.startswith("judged") for a in asked)


def test_every_judge_variant_is_a_registered_strategy():
    from backend.ranking import judge

    judged = {name for name, s in strategies.REGISTRY.items() if s.llm_judged}
    assert judged == {f"llm_{variant}" for variant in judge.VARIANTS} == set(simulation.JUDGED)
