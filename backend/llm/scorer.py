"""What every scoring engine meets and shares: the Scorer contract, the request's deadline, texts and answers as
tokens. Free of torch, so the predictor and the tools that only read probabilities load without it.

The engines: backend/llm/local.py (transformers, in this process) and backend/llm/remote.py (an OpenAI-compatible
server).
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from backend.llm.prompt import Prompt

DEVICES = ("auto", "cpu", "cuda")  # where the in-process engine runs (local.py's pick_device)

# A request's deadline (time.monotonic()), set by the caller; scoring that has not started by then is refused.
# The in-process engine checks it when the model's thread takes the work up (after any wait behind other requests'
# chunks); the server engine before each call to the server.
DEADLINE: ContextVar[float | None] = ContextVar("llm_deadline", default=None)


class DeadlineExceeded(TimeoutError):
    """The request's deadline passed while its texts waited for the model."""


def check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise DeadlineExceeded("the deadline passed while waiting for the model")


class Scorer(Protocol):
    """Scores texts against a prompt's answers: log P(answer tokens | prompt, text), summed over the answer's
    tokens, one row per text. Both engines give the same numbers for the same model (tests/integration/test_llm_server.py)."""

    tokenizer: Any
    max_text_tokens: int

    def encode(self, text: str) -> list[int]: ...

    def text_ids(self, text: str) -> tuple[list[int], bool]: ...

    def label_logprobs(
        self, prompt: Prompt, texts: Sequence[str], answers: Sequence[str] | None = None
    ) -> np.ndarray: ...


class StateScorer(Scorer, Protocol):
    """A Scorer that also hands out hidden states: the in-process engine (local.py), not one behind an API."""

    model: Any

    def logprobs_and_states(
        self, prompt: Prompt, texts: Sequence[str], answers: Sequence[str] | None = None, layers: Sequence[int] = ()
    ) -> tuple[np.ndarray, np.ndarray]: ...


def cut_ids(ids: list[int], max_tokens: int) -> tuple[list[int], bool]:
    """The tokens cut to max_tokens, keeping head and tail (a review's verdict is often at its end); True if cut."""
    if len(ids) <= max_tokens:
        return ids, False
    head = max_tokens * 3 // 4
    return ids[:head] + ids[-(max_tokens - head) :], True


def answer_ids(encode: Callable[[str], list[int]], answers: Sequence[str]) -> list[list[int]]:
    """Each answer's tokens; an answer of no tokens could not be scored, so it is refused here."""
    ids = [encode(answer) for answer in answers]
    if not all(ids):
        raise ValueError(f"an answer string encodes to no tokens: {[a for a, i in zip(answers, ids) if not i]}")
    return ids
