"""How close serving comes to what this machine's matrix units allow (labelloop benchmark).

The scorer is compute-bound on the decoder's matrix multiplications, so the ceiling for a sample is

    ceiling reviews/s = matmul rate (FLOP/s) / (FLOP per token x tokens per review)

where the rate is measured in the same run, in bf16 on the model's own MLP shapes (the CPU's speed varies with load,
so a wall-clock target would measure the neighbours), FLOP per token counts the decoder's weights (2 per weight,
the embedding lookup free), and a review's tokens are what the scorer feeds: the text (cut at MAX_TEXT_TOKENS), the
prompt's suffix, and every answer's tokens but the last. Attention over the shared prefix and the LM head at the
answer positions come on top, so efficiency = served reviews/s / ceiling can reach 1 only if they were free.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import torch

from backend.llm.local import HEAD_STEP, WIDTH_STEP
from backend.llm.scorer import answer_ids


def flops_per_token(config: Any) -> float:
    """Multiply-adds x 2 of the decoder's linear layers for one token (attention projections and MLP)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i  # q and o, k and v, gate, up and down
    return 2.0 * layers * per_layer


def matmul_rate(
    config: Any, tokens: int = 1024, seconds: float = 3.0, dtype: torch.dtype = torch.bfloat16, device: str = "cpu"
) -> float:
    """FLOP/s of the MLP's up and down projections on `tokens` rows: the best of repeated timings over `seconds`."""
    h, i = config.hidden_size, config.intermediate_size
    x = torch.randn(tokens, h, dtype=dtype, device=device)
    up = torch.randn(h, i, dtype=dtype, device=device) / h**0.5
    down = torch.randn(i, h, dtype=dtype, device=device) / i**0.5
    flops = 2.0 * tokens * h * i * 2
    best = 0.0
    deadline = time.perf_counter() + seconds
    with torch.inference_mode():
        (x @ up) @ down  # warm-up: kernel choice, allocation
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            y = (x @ up) @ down
            if device != "cpu":
                torch.cuda.synchronize()
            best = max(best, flops / (time.perf_counter() - started))
    del y
    return best


def review_tokens(scorer: Any, prompt: Any, texts: Sequence[str], answers: Sequence[str]) -> list[int]:
    """Tokens the scorer feeds per text: the cut text, the suffix, every answer's tokens but the last."""
    suffix = len(scorer.encode(prompt.suffix))
    branches = sum(len(ids) - 1 for ids in answer_ids(scorer.encode, answers))
    return [len(scorer.text_ids(t)[0]) + suffix + branches for t in texts]


def ceiling(rate: float, config: Any, tokens: Sequence[int]) -> dict:
    """The throughput the matmul rate allows for these reviews' tokens."""
    per_token = flops_per_token(config)
    mean_tokens = sum(tokens) / len(tokens)
    tokens_per_s = rate / per_token
    return {
        "matmul_gflops": rate / 1e9,
        "gflop_per_token": per_token / 1e9,
        "tokens_per_s": tokens_per_s,
        "mean_tokens_per_review": mean_tokens,
        "reviews_per_s": tokens_per_s / mean_tokens,
    }


def overheads(scorer: Any, prompt: Any, texts: Sequence[str], answers: Sequence[str], config: Any) -> dict:
    """Where compute goes beyond the linear layers on the review's own tokens, counted from the shapes the scorer
    builds (no pass is run), each as a fraction of those linear-layer FLOPs:
    - padding: the tokens a packed batch computes beyond the texts' own (rows up to row_tokens, widths rounded up
      to WIDTH_STEP; every row of a batch as wide as its widest);
    - prefix attention: every token attends to the shared prompt prefix and to its own text (4 FLOP per head
      dimension per attended position per layer: scores and the weighted sum);
    - LM head: one vocabulary-wide row per position that predicts an answer token, rounded up to HEAD_STEP."""
    h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    per_token = flops_per_token(config)
    label_ids = answer_ids(scorer.encode, answers)
    suffix = scorer.encode(prompt.suffix)
    segments = [scorer.text_ids(t)[0] + suffix for t in texts]
    branch = sum(len(ids) - 1 for ids in label_ids)
    real = sum(len(s) + branch for s in segments)
    computed = head_rows = 0
    for rows in scorer._pack(segments, label_ids):
        width = max(sum(len(segments[i]) + branch for i in row) for row in rows)
        computed += len(rows) * -(-width // WIDTH_STEP) * WIDTH_STEP
        positions = sum(1 + branch for row in rows for _ in row)  # the text's last token, then each branch token
        head_rows += -(-positions // HEAD_STEP) * HEAD_STEP
    prefix = len(scorer.encode(prompt.prefix))
    attention = sum(4.0 * layers * h * (prefix + (len(s) + branch) / 2) * (len(s) + branch) for s in segments)
    linear = per_token * real
    return {
        "padding": (computed - real) / real,
        "prefix_attention": attention / linear,
        "lm_head": 2.0 * h * vocab * head_rows / linear,
        "prefix_tokens": prefix,
    }


def time_shares(scorer: Any, prompt: Any, texts: Sequence[str], answers: Sequence[str]) -> dict:
    """Where the scoring time of these texts goes, measured: the texts are tokenised, then scored under torch's
    profiler on this thread, and each operator's own time is put in one of
    - linear: the decoder's matmuls (attention projections and MLP),
    - lm_head: the vocabulary-wide matmul at the answer positions,
    - attention: the attention kernel (the shared prefix and the row's own tokens, under the packed mask),
    - other_kernels: everything else torch ran (norms, rotary embeddings, activations, copies, the cache's concat),
    - python: the rest of the wall time (building the packed rows and masks, dispatch between operators),
    - tokenising: encoding the texts, timed apart (the request thread does it before the model's thread scores).
    Shares of the total; `seconds` is that total. The profiler itself slows dispatch a little, so `python` is an
    upper bound."""
    from torch.profiler import ProfilerActivity, profile

    started = time.perf_counter()
    label_ids = answer_ids(scorer.encode, answers)
    suffix = scorer.encode(prompt.suffix)
    segments = [scorer.text_ids(t)[0] + suffix for t in texts]
    tokenising = time.perf_counter() - started
    scorer._score_all(prompt, segments[:2], label_ids)  # the prefix's cache, computed once per prompt, stays out
    vocab = scorer.model.config.vocab_size
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        started = time.perf_counter()
        scorer._score_all(prompt, segments, label_ids)
        wall = time.perf_counter() - started
    seconds = {"linear": 0.0, "lm_head": 0.0, "attention": 0.0, "other_kernels": 0.0}
    for event in prof.key_averages(group_by_input_shape=True):
        own = event.self_cpu_time_total / 1e6
        if event.key in ("aten::mm", "aten::addmm"):
            head = any(vocab in shape for shape in event.input_shapes if shape)
            seconds["lm_head" if head else "linear"] += own
        elif "scaled_dot_product" in event.key:
            seconds["attention"] += own
        else:
            seconds["other_kernels"] += own
    seconds["python"] = max(wall - sum(seconds.values()), 0.0)
    seconds["tokenising"] = tokenising
    total = sum(seconds.values())
    return {"seconds": total, **{name: s / total for name, s in seconds.items()}}
