"""Label scoring through an OpenAI-compatible server (llama.cpp's server, vLLM), for when the LLM runs elsewhere.

The server is asked for the next token after "prompt + text + chat markers" with its top-K log-probabilities
(`/v1/completions`, `max_tokens=1`, `logprobs=K`, temperature 0). A label's log-probability is read from that
list; a label of several tokens costs one more request per extra token, with the label's first tokens appended.
This is the one way to read label log-probabilities that llama.cpp's server and vLLM both answer cheaply: echoing
the prompt's own log-probabilities would make llama-cpp-python compute and sort the whole vocabulary for every
prompt token.

What differs from the in-process engine (backend/llm/local.py):
- only the top K tokens come back, so an answer outside them gets the K-th log-probability, an upper bound
  (counted in `floored`). Measured on 30 reviews × the fitted calibration's 12 answer strings: K = 20 floored 25%
  of them, K = 100 5%, K = 300 (the default) 0.3%; vLLM needs `--max-logprobs 300` for that;
- the server owns batching and caching: llama.cpp keeps the shared prompt prefix from one request to the next,
  vLLM batches concurrent requests, so requests are sent `concurrency` at a time.
The tokenizer (for the chat template and for splitting labels into tokens) is loaded locally from LLM_MODEL, which
must name the model the server serves.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import httpx
import numpy as np

from backend.errors import LabelloopError
from backend.llm.prompt import Prompt
from backend.llm.scorer import DEADLINE, answer_ids, check_deadline, cut_ids

log = logging.getLogger(__name__)


class LLMServerError(LabelloopError, RuntimeError):
    """The LLM server cannot be reached or answers something unusable; the message says what to check."""

    http_status = 503


class ServerScorer:
    """The LLMScorer interface (label_logprobs, tokenizer, encode, text_ids) over an OpenAI-compatible server."""

    def __init__(
        self,
        base_url: str,
        tokenizer: Any,
        *,
        model: str = "",
        api_key: str = "",
        top_logprobs: int = 300,
        concurrency: int = 4,
        timeout: float = 60.0,
        max_text_tokens: int = 512,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokenizer = tokenizer
        self.top_logprobs = top_logprobs
        self.max_text_tokens = max_text_tokens
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="llm-server")
        self.model = model
        self.floored = 0  # answers that fell outside the top K and got the K-th log-probability instead
        self._floored_lock = threading.Lock()

    def connect(self, wait_seconds: float) -> None:
        """Wait for the server to list its models (replicas and their LLM server may start in any order), then
        check it serves `model`, or take the one it serves first when none was named."""
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                served = self._served_models()
                break
            except LLMServerError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        if not self.model:
            self.model = served[0]
        elif self.model not in served:
            raise LLMServerError(f"{self.base_url} serves {served}, not {self.model!r} (LLM_SERVER_MODEL)")

    def _served_models(self) -> list[str]:
        try:
            answer = self._http.get("/models")
            answer.raise_for_status()
            models = [m["id"] for m in answer.json()["data"]]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as e:
            raise LLMServerError(f"the LLM server at {self.base_url} did not list its models: {e}") from None
        if not models:
            raise LLMServerError(f"the LLM server at {self.base_url} serves no model")
        return models

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def text_ids(self, text: str) -> tuple[list[int], bool]:
        return cut_ids(self.encode(text), self.max_text_tokens)

    def label_logprobs(self, prompt: Prompt, texts: Sequence[str], answers: Sequence[str] | None = None) -> np.ndarray:
        """(n_texts, n_answers) log P(answer tokens | prompt, text), as backend.llm.local.LLMScorer computes it."""
        answers = list(prompt.labels if answers is None else answers)
        if not texts:
            return np.zeros((0, len(answers)))
        label_ids = answer_ids(self.encode, answers)
        # Every distinct "answer tokens so far" after which a next token must be read; () is the answer's start.
        steps = sorted({tuple(ids[:k]) for ids in label_ids for k in range(len(ids))})
        contexts = []
        for text in texts:
            ids, cut = self.text_ids(text)
            contexts.append(prompt.prefix + (self.tokenizer.decode(ids) if cut else text) + prompt.suffix)
        jobs = [(c, step) for c in contexts for step in steps]
        deadline = DEADLINE.get()  # read here: the pool's threads do not see the request's context

        def ask(job: tuple[str, tuple[int, ...]]) -> dict[str, float]:
            check_deadline(deadline)  # as the in-process engine: work not started by the deadline is refused
            return self._next_token(job[0] + self.tokenizer.decode(list(job[1])))

        tops = list(self._pool.map(ask, jobs))
        by_job = {(i, step): tops[i * len(steps) + s] for i in range(len(texts)) for s, step in enumerate(steps)}
        out = np.zeros((len(texts), len(answers)))
        floored = 0
        for i in range(len(texts)):
            for a, ids in enumerate(label_ids):
                for k, token in enumerate(ids):
                    top = by_job[(i, tuple(ids[:k]))]
                    value = top.get(self.tokenizer.decode([token]))
                    if value is None:
                        floored += 1
                        value = min(top.values())
                    out[i, a] += value
        if floored:
            with self._floored_lock:
                self.floored += floored
            log.debug("%d answer tokens fell outside the server's top %d", floored, self.top_logprobs)
        return out

    def _next_token(self, context: str) -> dict[str, float]:
        """The server's top-K next tokens after `context`, as {token text: log-probability}."""
        body = {
            "model": self.model,
            "prompt": context,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": self.top_logprobs,
        }
        try:
            answer = self._http.post("/completions", json=body)
        except httpx.HTTPError as e:
            raise LLMServerError(f"the LLM server at {self.base_url} is unreachable: {e}") from None
        if answer.status_code != 200:
            raise LLMServerError(
                f"the LLM server at {self.base_url} answered {answer.status_code}: {answer.text[:300]}"
            )
        try:
            logprobs = answer.json()["choices"][0]["logprobs"]
            if "top_logprobs" in logprobs:  # the completions API's own shape (vLLM, llama-cpp-python)
                top = {str(k): float(v) for k, v in logprobs["top_logprobs"][0].items()}
            else:  # the chat API's shape, which llama.cpp's own server also uses for completions
                top = {str(t["token"]): float(t["logprob"]) for t in logprobs["content"][0]["top_logprobs"]}
            if not top:
                raise ValueError("empty")
            return top
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise LLMServerError(
                f"the LLM server at {self.base_url} returned no top log-probabilities: llama-cpp-python needs "
                f"logits_all (its default), vLLM --max-logprobs >= {self.top_logprobs} (LLM_SERVER_TOP_LOGPROBS)"
            ) from None
