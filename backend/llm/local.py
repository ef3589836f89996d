"""Label scoring with a local causal LM: log P(label | prompt, text) for every label, in one forward pass per batch.

How the pass is laid out (why it is fast and exact):
- the prompt prefix (guidelines, few-shot turns) is run once per prompt and its KV cache kept; every batch
  starts from a view of it, so a task costs only its own tokens plus a few chat markers;
- each row holds one task's text, then every multi-token label's tokens side by side as branches; a 4-D
  attention mask lets a branch see the text and its own earlier tokens only, and position ids restart after the
  text for every branch, so each label is scored exactly as if it had been appended alone; labels that differ only
  in their last token (every "sentiment: <label>" line of a question whose labels are one token each) share one
  branch;
- the LM head (a 152k-wide matmul) runs only on the positions whose next token is a label token;
- the same pass can hand out one layer's hidden state at the position where the answer begins (the text's last
  token): the features a trained model learns from, at no extra forward pass.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from backend.llm.prompt import Prompt
from backend.llm.scorer import DEADLINE, DEVICES, answer_ids, check_deadline, cut_ids

log = logging.getLogger(__name__)

# Packed widths and LM-head rows are rounded up to these, so the forward passes come in a few dozen shapes
# instead of ever new ones: oneDNN keeps a primitive per shape, and new shapes grew the worker under load.
WIDTH_STEP, HEAD_STEP = 16, 32


@dataclass
class _Prefix:
    ids: list[int]
    keys: list[torch.Tensor]  # per layer, (1, kv_heads, P, head_dim)
    values: list[torch.Tensor]


# Rows per forward pass when BATCH_SIZE is not set: a CPU gains nothing from more than a few rows of 256 tokens (the
# matmuls already fill its cores), a GPU needs many to be busy.
AUTO_BATCH = {"cpu": 4, "cuda": 32}


def pick_device(choice: str, cuda_available: bool) -> str:
    """LLM_DEVICE to a torch device: auto is CUDA when torch sees one, else the CPU."""
    if choice not in DEVICES:
        raise ValueError(f"LLM_DEVICE={choice!r}: use {', '.join(DEVICES)}")
    if choice == "auto":
        return "cuda" if cuda_available else "cpu"
    if choice == "cuda" and not cuda_available:
        raise ValueError(
            f"LLM_DEVICE=cuda, but torch {torch.__version__} sees no CUDA device (a CPU-only build, or "
            "no GPU visible); use LLM_DEVICE=auto or cpu"
        )
    return choice


def _branches(label_ids: list[list[int]]) -> tuple[list[list[int]], list[int]]:
    """The distinct branches (a label's tokens but its last, which is predicted, never fed) and each label's."""
    distinct: dict[tuple[int, ...], int] = {}
    owner = [distinct.setdefault(tuple(ids[:-1]), len(distinct)) for ids in label_ids]
    return [list(b) for b in distinct], owner


class LLMScorer:
    """Scores texts against a prompt's labels; one instance per process, shared by all request threads."""

    def __init__(
        self, model, tokenizer, batch_size: int = 8, row_tokens: int = 256, max_text_tokens: int = 512
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.row_tokens = row_tokens
        self.max_text_tokens = max_text_tokens
        # Every forward pass runs on this one thread: on a small CPU concurrent passes only fight over the same
        # cores, and tensors allocated by the many request threads would spread over as many malloc arenas
        # (measured: 2.7 GB peak for the server against 2.0 GB for the same work on one thread).
        self._runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llm")
        self._prefixes: dict[str, _Prefix] = {}

    @classmethod
    def load(cls, path: str, dtype: str = "auto", device: str = "cpu", **kwargs) -> "LLMScorer":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = torch.bfloat16 if dtype in ("auto", "bfloat16", "bf16") else torch.float32
        tokenizer = AutoTokenizer.from_pretrained(path)
        # transformers wraps to() in a decorator whose type loses the bound self, so it wants the model first
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).to(device)  # type: ignore[arg-type]
        return cls(model, tokenizer, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def text_ids(self, text: str) -> tuple[list[int], bool]:
        return cut_ids(self.encode(text), self.max_text_tokens)

    @torch.inference_mode()
    def _prefix(self, prompt: Prompt) -> _Prefix:
        key = prompt.sha256
        if key not in self._prefixes:
            ids = self.encode(prompt.prefix)
            out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
            cache = out.past_key_values
            keys = [layer.keys for layer in cache.layers]
            values = [layer.values for layer in cache.layers]
            self._prefixes[key] = _Prefix(ids, keys, values)
            log.info("prompt prefix computed: %d tokens, %d labels", len(ids), len(prompt.labels))
        return self._prefixes[key]

    def label_logprobs(self, prompt: Prompt, texts: Sequence[str], answers: Sequence[str] | None = None) -> np.ndarray:
        """(n_texts, n_answers) log P(answer tokens | prompt, text), summed over each answer's tokens.

        The answers default to the prompt's labels; a calibration may read more strings (see calibration.py).
        """
        return self.logprobs_and_states(prompt, texts, answers)[0]

    def logprobs_and_states(
        self, prompt: Prompt, texts: Sequence[str], answers: Sequence[str] | None = None, layers: Sequence[int] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """label_logprobs, and (n_texts, len(layers), hidden) float32: the output of each of `layers` (1 = the first
        decoder layer) at the text's last token, where the answer begins, from the same forward pass."""
        answers = list(prompt.labels if answers is None else answers)
        hidden = self.model.config.hidden_size
        if not texts:
            return np.zeros((0, len(answers))), np.zeros((0, len(layers), hidden), dtype=np.float32)
        depth = self.model.config.num_hidden_layers
        if any(not 1 <= layer <= depth for layer in layers):
            raise ValueError(f"layers must be between 1 and {depth}, not {list(layers)}")
        label_ids = answer_ids(self.encode, answers)
        suffix = self.encode(prompt.suffix)
        segments = [self.text_ids(t)[0] + suffix for t in texts]
        return self._runner.submit(self._score_all, prompt, segments, label_ids, DEADLINE.get(), tuple(layers)).result()

    def _score_all(
        self,
        prompt: Prompt,
        segments: list[list[int]],
        label_ids: list[list[int]],
        deadline: float | None = None,
        layers: tuple[int, ...] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        check_deadline(deadline)
        out = np.zeros((len(segments), len(label_ids)))
        states = np.zeros((len(segments), len(layers), self.model.config.hidden_size), dtype=np.float32)
        prefix = self._prefix(prompt)
        for rows in self._pack(segments, label_ids):
            order = [i for row in rows for i in row]
            out[order], states[order] = self._score_rows(
                prefix, [[segments[i] for i in row] for row in rows], label_ids, layers
            )
        return out, states

    def _pack(self, segments: list[list[int]], label_ids: list[list[int]]):
        """Group task indices into rows of about row_tokens tokens, rows into batches of batch_size rows.

        Packing several short reviews into one row (each seeing only the prefix and itself) wastes no compute on
        padding, which matters when reviews are 20 tokens and a plot synopsis 200.
        """
        extra = sum(len(b) for b in _branches(label_ids)[0])
        order = sorted(range(len(segments)), key=lambda i: -len(segments[i]))
        rows: list[list[int]] = []
        lengths: list[int] = []
        for i in order:
            need = len(segments[i]) + extra
            for r, used in enumerate(lengths):
                if used + need <= self.row_tokens:
                    rows[r].append(i)
                    lengths[r] += need
                    break
            else:
                rows.append([i])
                lengths.append(need)
        for start in range(0, len(rows), self.batch_size):
            yield rows[start : start + self.batch_size]

    @torch.inference_mode()
    def _score_rows(
        self, prefix: _Prefix, rows: list[list[list[int]]], label_ids: list[list[int]], layers: tuple[int, ...] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores for every segment of every row, in row order, and the requested layers' states at its last token."""
        from transformers import DynamicCache

        n_labels = len(label_ids)
        branches, branch_of = _branches(label_ids)
        branch_len = sum(len(b) for b in branches)
        n, p = len(rows), len(prefix.ids)
        width = max(sum(len(seg) + branch_len for seg in row) for row in rows)
        width = -(-width // WIDTH_STEP) * WIDTH_STEP
        input_ids = torch.full((n, width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        positions = torch.zeros((n, width), dtype=torch.long)
        mask = torch.zeros((n, 1, width, p + width), dtype=torch.bool)
        mask[:, :, :, :p] = True
        # For each (segment, label) pair: the (row, column) outputs that predict each of the label's tokens.
        gather_rows, gather_cols, targets, owners = [], [], [], []
        answer_at: list[int] = []  # flat (row * width + column) of each segment's last text token
        n_seg = 0
        for r, row in enumerate(rows):
            start = 0
            for seg in row:
                t = len(seg)
                input_ids[r, start : start + t] = torch.tensor(seg)
                positions[r, start : start + t] = torch.arange(p, p + t)
                mask[r, 0, start : start + t, p + start : p + start + t] = torch.tril(
                    torch.ones(t, t, dtype=torch.bool)
                )
                offset = start + t
                answer_at.append(r * width + start + t - 1)
                starts = []
                for branch in branches:
                    b = len(branch)
                    starts.append(offset)
                    if b:
                        input_ids[r, offset : offset + b] = torch.tensor(branch)
                        positions[r, offset : offset + b] = torch.arange(p + t, p + t + b)
                        mask[r, 0, offset : offset + b, p + start : p + start + t] = True
                        mask[r, 0, offset : offset + b, p + offset : p + offset + b] = torch.tril(
                            torch.ones(b, b, dtype=torch.bool)
                        )
                    offset += b
                for li, full in enumerate(label_ids):
                    at, b = starts[branch_of[li]], len(full) - 1
                    # Token k of the label is predicted by the text's last output (k = 0) or by branch token k-1.
                    for k, col in enumerate([start + t - 1] + [at + j for j in range(b)]):
                        gather_rows.append(r)
                        gather_cols.append(col)
                        targets.append(full[k])
                        owners.append(n_seg * n_labels + li)
                start = offset
                n_seg += 1
        cache = DynamicCache(
            ddp_cache_data=[
                (k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in zip(prefix.keys, prefix.values)
            ]
        )
        device = self.device
        input_ids, mask, positions = input_ids.to(device), mask.to(device), positions.to(device)
        # Hooks keep only the answer positions of the layers asked for, not every layer's whole activations.
        captured: dict[int, torch.Tensor] = {}
        answer_rows = torch.tensor(answer_at, device=device)

        def keep(layer: int):
            def hook(module, args, output):
                state = output[0] if isinstance(output, tuple) else output
                captured[layer] = state.reshape(n * width, -1)[answer_rows].float()

            return hook

        handles = [self.model.model.layers[layer - 1].register_forward_hook(keep(layer)) for layer in layers]
        try:
            hidden = self.model.model(
                input_ids=input_ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
            ).last_hidden_state
        finally:
            for handle in handles:
                handle.remove()
        # Labels whose tokens are predicted from the same output (every label's first token comes from the text's
        # last position) share one LM-head row: a 152k-wide float row is 0.6 MB, and a batch holds hundreds.
        flat = torch.tensor(gather_rows, device=device) * width + torch.tensor(gather_cols, device=device)
        positions_used, inverse = torch.unique(flat, return_inverse=True)
        padded = -(-len(positions_used) // HEAD_STEP) * HEAD_STEP
        positions_used = torch.cat([positions_used, positions_used[-1:].expand(padded - len(positions_used))])
        logits = self.model.lm_head(hidden.reshape(n * width, -1)[positions_used]).float()
        token_lp = logits[inverse, torch.tensor(targets, device=device)] - torch.logsumexp(logits, dim=-1)[inverse]
        sums = torch.zeros(n_seg * n_labels, device=device).index_add_(0, torch.tensor(owners, device=device), token_lp)
        scores = sums.view(n_seg, n_labels).cpu().numpy()
        if not layers:
            return scores, np.zeros((n_seg, 0, hidden.shape[-1]), dtype=np.float32)
        return scores, torch.stack([captured[layer] for layer in layers], dim=1).cpu().numpy()
