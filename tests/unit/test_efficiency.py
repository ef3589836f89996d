"""backend/bench/efficiency.py: the FLOP count, the matmul rate and the ceiling, on the tiny model's shapes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from helpers import tiny_predictor

from backend.bench import efficiency

QWEN_05B = SimpleNamespace(
    hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2
)


def test_flops_per_token_counts_the_decoders_weights():
    # Qwen2.5-0.5B: 24 x (896*896*2 + 896*128*2 + 3*896*4864) weights in the decoder's linear layers, 2 FLOP each:
    # about 0.72 GFLOP per token (the embedding lookup is free, the LM head runs only at answer positions).
    assert efficiency.flops_per_token(QWEN_05B) == pytest.approx(
        2 * 24 * (896 * 896 * 2 + 896 * 128 * 2 + 3 * 896 * 4864)
    )
    assert 0.70e9 < efficiency.flops_per_token(QWEN_05B) < 0.74e9


def test_matmul_rate_is_a_plausible_rate():
    rate = efficiency.matmul_rate(QWEN_05B, tokens=64, seconds=0.3)
    assert 1e8 < rate < 1e14  # FLOP/s: more than a calculator, less than a data centre


def test_review_tokens_and_ceiling_follow_the_scorer():
    predictor = tiny_predictor(calibration="none")
    from helpers import CONFIG

    from backend.labelstudio import schema as schemas

    setup = predictor.setup(schemas.parse(CONFIG))
    scorer = predictor.scorer
    texts = ["short", "a somewhat longer review of a film " * 5]
    tokens = efficiency.review_tokens(scorer, setup.prompt, texts, setup.calibration.features)
    suffix = len(scorer.encode(setup.prompt.suffix))
    branches = sum(len(scorer.encode(a)) - 1 for a in setup.calibration.features)  # every answer token but the last
    assert tokens[0] == len(scorer.encode("short")) + suffix + branches
    assert tokens[1] - tokens[0] == len(scorer.encode(texts[1])) - len(scorer.encode("short"))
    c = efficiency.ceiling(2e11, QWEN_05B, [30, 50])
    assert c["mean_tokens_per_review"] == 40
    assert c["reviews_per_s"] == pytest.approx(2e11 / efficiency.flops_per_token(QWEN_05B) / 40)


def test_overheads_are_fractions_of_the_linear_work():
    from helpers import CONFIG

    from backend.labelstudio import schema as schemas

    predictor = tiny_predictor(calibration="none")
    setup = predictor.setup(schemas.parse(CONFIG))
    scorer = predictor.scorer
    config = scorer.model.config
    short = efficiency.overheads(scorer, setup.prompt, ["fine"] * 12, setup.calibration.features, config)
    long = efficiency.overheads(scorer, setup.prompt, ["a long review " * 30] * 12, setup.calibration.features, config)
    assert short["prefix_tokens"] == len(scorer.encode(setup.prompt.prefix)) == long["prefix_tokens"]
    for o in (short, long):
        assert o["padding"] >= 0 and o["prefix_attention"] > 0 and o["lm_head"] > 0
    # Per token, a short text spends relatively more on its answer rows; a long one attends to more positions.
    assert short["lm_head"] > long["lm_head"] and long["prefix_attention"] > short["prefix_attention"]


def test_time_shares_split_the_measured_scoring_time():
    from helpers import CONFIG

    from backend.labelstudio import schema as schemas

    predictor = tiny_predictor(calibration="none")
    setup = predictor.setup(schemas.parse(CONFIG))
    shares = efficiency.time_shares(
        predictor.scorer, setup.prompt, ["a fine film"] * 6 + ["dull " * 40] * 3, setup.calibration.features
    )
    parts = ("linear", "lm_head", "attention", "other_kernels", "python", "tokenising")
    assert sum(shares[p] for p in parts) == pytest.approx(1.0)
    assert all(shares[p] >= 0 for p in parts) and shares["seconds"] > 0
    # Every pass runs the decoder's matmuls, the attention kernel and the LM head at the answer positions.
    assert shares["linear"] > 0 and shares["attention"] > 0 and shares["lm_head"] > 0
