"""The second engine: label scoring through llama.cpp's OpenAI-compatible server (llama-cpp-python, real, on
127.0.0.1, serving the embedded GGUF), checked against the in-process engine on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from helpers import CONFIG, free_port, gunicorn

from backend import guidelines
from backend.dev import llama
from backend.labelstudio import schema
from backend.llm import calibration as cal
from backend.llm import prompt
from backend.llm import weights as models
from backend.llm.local import LLMScorer
from backend.llm.predictor import Predictor
from backend.llm.remote import LLMServerError, ServerScorer
from backend.serving.app import create_app
from backend.serving.service import Service
from backend.settings import Settings, SettingsError

TEXTS = [
    "A warm, funny and beautifully acted film; I loved every minute of it.",
    "A dull, lifeless sequel that nobody asked for, with a plot that goes nowhere.",
    "The film follows a retired detective who returns to his home town in 1950s Ohio to settle his father's estate.",
    "Not bad, not great.",
    "word " * 700,  # longer than MAX_TEXT_TOKENS: cut the same way by both engines
]
needs_llama = pytest.mark.skipif(not llama.available(), reason=llama.MISSING_REASON)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not llama.available():
        pytest.skip(llama.MISSING_REASON)
    with pytest.MonkeyPatch.context() as env:
        # `make` exports PORT for the backend; the server must still listen where it is told.
        env.setenv("PORT", str(free_port()))
        with llama.LlamaServer(free_port(), tmp_path_factory.mktemp("llama") / "server.log", wait=90) as url:
            yield url


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(models.resolve().path)


@pytest.fixture(scope="module")
def in_process():
    return LLMScorer.load(models.resolve().path)


@needs_llama
def test_server_scores_agree_with_the_in_process_engine(server, tokenizer, in_process):
    scorer = ServerScorer(server, tokenizer, max_text_tokens=in_process.max_text_tokens)
    scorer.connect(10)
    assert scorer.model == llama.ALIAS
    p = prompt.build(tokenizer, ("Positive", "Negative", "Neutral"), guidelines.load())
    # The label strings and the fitted calibration's other answer strings (lower case, prefixes, leading space).
    answers = cal.verbalizers(p.labels)
    got = scorer.label_logprobs(p, TEXTS, answers)
    want = in_process.label_logprobs(p, TEXTS, answers)
    assert got.shape == want.shape == (len(TEXTS), len(answers))
    labels = [answers.index(label) for label in p.labels]
    # Same weights, other arithmetic (llama.cpp runs the GGUF's 8-bit weights, transformers bf16): the same choice,
    # and label log-probabilities within a few tenths where they matter.
    assert (got[:, labels].argmax(1) == want[:, labels].argmax(1)).all()
    likely = want[:, labels] > -5
    assert np.abs(got[:, labels] - want[:, labels])[likely].max() < 0.5
    assert got.max() <= 0


@needs_llama
def test_multi_token_answers_are_read_token_by_token(server, tokenizer, in_process):
    scorer = ServerScorer(server, tokenizer, top_logprobs=50)
    scorer.connect(10)
    p = prompt.build(tokenizer, ("Very good indeed", "Rather bad stuff", "So-so"), None)
    assert all(len(scorer.encode(label)) > 1 for label in p.labels)
    got = scorer.label_logprobs(p, TEXTS[:2])
    want = in_process.label_logprobs(p, TEXTS[:2])
    assert (got.argmax(1) == want.argmax(1)).all()
    assert np.abs(got - want).max() < 0.75


@needs_llama
def test_answers_outside_the_top_k_get_the_kth_log_probability_and_are_counted(server, tokenizer):
    p = prompt.build(tokenizer, ("Positive", "Negative", "Neutral"), guidelines.load())
    scorer = ServerScorer(server, tokenizer, top_logprobs=1)
    scorer.connect(10)
    got = scorer.label_logprobs(p, TEXTS[:2])
    # One token comes back per text; the other two labels are floored at its log-probability, an upper bound.
    assert scorer.floored >= 2 * 2
    assert (got == got.max(1, keepdims=True)).all()


@needs_llama
def test_the_server_engine_honours_the_request_deadline(server, tokenizer):
    """PREDICT_TIMEOUT holds for this engine too: no call to the server starts after the request's deadline."""
    import time

    from backend.llm import scorer as llm_scorer

    p = prompt.build(tokenizer, ("Positive", "Negative", "Neutral"), guidelines.load())
    scorer = ServerScorer(server, tokenizer)
    scorer.connect(10)
    token = llm_scorer.DEADLINE.set(time.monotonic() - 1)
    try:
        with pytest.raises(llm_scorer.DeadlineExceeded):
            scorer.label_logprobs(p, TEXTS[:2])
    finally:
        llm_scorer.DEADLINE.reset(token)
    assert scorer.label_logprobs(p, TEXTS[:1]).shape == (1, 3)  # no deadline: scored


@needs_llama
def test_backend_under_gunicorn_serves_predictions_through_the_server(server, in_process, tmp_path):
    env = {
        "DATA_DIR": str(tmp_path / "data"),
        "LLM_ENGINE": "openai",
        "LLM_SERVER_URL": server,
        "LLM_SERVER_API_KEY": "server-secret-123",
    }
    with gunicorn(env, tmp_path / "gunicorn.log", wait=180.0) as (url, _):
        tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(TEXTS[:3])]
        r = requests.post(f"{url}/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=120)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert [x["result"][0]["value"]["choices"][0] for x in results][:2] == ["Positive", "Negative"]
        version = r.json()["model_version"]
    log_text = (tmp_path / "gunicorn.log").read_text()
    # Its own version: the engine is part of what the predictions came from.
    settings = Settings()
    same_but_in_process = Predictor(
        in_process,
        models.resolve(),
        guidelines.load(),
        calibration=settings.calibration,
        calibration_dir=settings.calibration_dir,
    )
    assert version != same_but_in_process.setup(schema.parse(CONFIG)).model_version
    # No calibration was fitted on this engine: the one fitted on the same weights in-process stands in.
    assert version.startswith(models.EMBEDDED_NAME) and "-fitted-" in version
    assert "fitted on the same weights" in log_text
    assert "Traceback" not in log_text and "server-secret-123" not in log_text


def test_an_unreachable_server_fails_the_load_with_the_reason_and_predict_answers_503(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        llm_engine="openai",
        llm_server_url=f"http://127.0.0.1:{free_port()}/v1",
        model_wait_seconds=1,
    )
    service = Service(settings)
    service.start()
    service._ready.wait(120)
    c = create_app(service).test_client()
    health = c.get("/health")
    assert health.status_code == 503 and "did not list its models" in health.json["error"]
    r = c.post("/predict", json={"tasks": [{"data": {"text": "good"}}], "label_config": CONFIG})
    assert r.status_code == 503 and "127.0.0.1" in r.json["error"]


def test_a_server_that_stops_answering_is_a_503_not_a_500(tokenizer):
    scorer = ServerScorer(f"http://127.0.0.1:{free_port()}/v1", tokenizer, model="m", timeout=2)
    p = prompt.build(tokenizer, ("Positive", "Negative"), None)
    with pytest.raises(LLMServerError, match="unreachable"):
        scorer.label_logprobs(p, ["fine"])


@pytest.mark.parametrize(
    "env, message",
    [
        ({"LLM_ENGINE": "vllm-ish"}, "LLM_ENGINE"),
        ({"LLM_ENGINE": "openai"}, "LLM_SERVER_URL"),
        ({"LLM_ENGINE": "openai", "LLM_SERVER_URL": "http://x/v1", "LLM_SERVER_TOP_LOGPROBS": "0"}, "at least 1"),
    ],
)
def test_engine_settings_are_checked(monkeypatch, env, message):
    for name in ("LLM_ENGINE", "LLM_SERVER_URL", "LLM_SERVER_TOP_LOGPROBS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        Settings.from_env()
