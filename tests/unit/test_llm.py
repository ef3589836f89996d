import numpy as np
import pytest
import torch

from backend import guidelines
from backend.dev import tiny_model
from backend.llm import prompt
from backend.llm.local import LLMScorer

TEXTS = [
    "I loved every minute of it",
    "A dull, lifeless sequel that nobody asked for, with a plot that goes nowhere at all.",
    "Meh.",
    "The film runs 118 minutes and opens on Friday in four hundred theaters across the country.",
    "Not bad",
]


def naive_logprobs(scorer: LLMScorer, p: prompt.Prompt, text: str) -> list[float]:
    """The reference: the whole prompt, text and label in one sequence, one label at a time."""
    out = []
    for label in p.labels:
        ids = scorer.encode(p.prefix) + scorer.encode(text) + scorer.encode(p.suffix)
        label_ids = scorer.encode(label)
        # Logits (151,936 wide) only where a label token is predicted: the last len(label_ids) + 1 positions, so
        # row k is position len(ids) - 1 + k. The whole sequence still runs through the model.
        with torch.inference_mode():
            out_ = scorer.model(input_ids=torch.tensor([ids + label_ids]), logits_to_keep=len(label_ids) + 1)
        lp = torch.log_softmax(out_.logits[0].float(), -1)
        out.append(sum(lp[k, t].item() for k, t in enumerate(label_ids)))
    return out


@pytest.fixture(scope="module")
def scorer():
    return LLMScorer(tiny_model.model(), tiny_model.tokenizer(), batch_size=2, row_tokens=48)


@pytest.mark.parametrize(
    "labels",
    [
        ("Positive", "Negative", "Neutral"),
        ("Very good indeed", "Rather bad stuff", "So-so"),
        ("A", "Ab", "Abc def"),
        # Answer lines of a several-question prompt: labels differing only in their last token share one branch.
        (
            "aspects[Acting]: yes",
            "aspects[Acting]: no",
            "aspects[Music]: yes",
            "aspects[Music]: no",
            "spoiler: Yes",
            "spoiler: No",
        ),
    ],
)
def test_packed_scores_equal_one_sequence_per_label(scorer, labels):
    # Multi-token labels, labels that share first tokens, several rows and batches (row_tokens is small).
    p = prompt.build(scorer.tokenizer, labels, guidelines.load())
    got = scorer.label_logprobs(p, TEXTS)
    want = np.array([naive_logprobs(scorer, p, t) for t in TEXTS])
    assert got.shape == (len(TEXTS), len(labels))
    np.testing.assert_allclose(got, want, atol=2e-4)


def test_result_order_does_not_depend_on_batching(scorer):
    p = prompt.build(scorer.tokenizer, ("Positive", "Negative"), None)
    together = scorer.label_logprobs(p, TEXTS)
    alone = np.vstack([scorer.label_logprobs(p, [t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=2e-4)


def test_prefix_is_computed_once_and_tasks_cost_only_their_own_tokens(scorer):
    p = prompt.build(scorer.tokenizer, ("Yes", "No"), guidelines.load())
    prefix_len = len(scorer.encode(p.prefix))
    seen = []
    hook = scorer.model.model.register_forward_hook(
        lambda m, args, kw, out: seen.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        scorer.label_logprobs(p, ["good"])
        scorer.label_logprobs(p, ["bad", "fine"])
    finally:
        hook.remove()
    assert seen[0] == prefix_len  # the first call computes the prefix ...
    assert all(width < prefix_len for width in seen[1:])  # ... and no later pass runs it again
    assert len(seen) == 3


def test_long_text_is_cut_to_max_tokens(scorer):
    ids, cut = scorer.text_ids("word " * 5000)
    assert cut and len(ids) == scorer.max_text_tokens
    assert scorer.text_ids("short")[1] is False


def test_empty_list_gives_empty_matrix(scorer):
    p = prompt.build(scorer.tokenizer, ("Positive", "Negative"), None)
    assert scorer.label_logprobs(p, []).shape == (0, 2)


def test_scoring_that_waited_past_its_deadline_is_refused(scorer):
    import threading
    import time

    from backend.llm import scorer as llm_scorer

    p = prompt.build(scorer.tokenizer, ("Yes", "No"), None)
    gate = threading.Event()
    scorer._runner.submit(gate.wait, 30)  # the model's thread is busy with another request's chunk
    threading.Timer(0.5, gate.set).start()
    token = llm_scorer.DEADLINE.set(time.monotonic() + 0.2)
    try:
        with pytest.raises(llm_scorer.DeadlineExceeded):
            scorer.label_logprobs(p, TEXTS[:1])
    finally:
        llm_scorer.DEADLINE.reset(token)
    assert scorer.label_logprobs(p, TEXTS[:1]).shape == (1, 2)  # no deadline: scored


def test_hidden_states_of_the_packed_pass_equal_one_sequence_per_text(scorer):
    """The answer-position states a trained model learns from come out of the scoring pass itself, packed several
    texts to a row, and equal those of the prompt and text run alone."""
    p = prompt.build(scorer.tokenizer, ("Positive", "Negative", "Neutral"), guidelines.load())
    depth = scorer.model.config.num_hidden_layers
    logprobs, states = scorer.logprobs_and_states(p, TEXTS, layers=[1, depth])
    assert np.allclose(logprobs, scorer.label_logprobs(p, TEXTS))
    assert states.shape == (len(TEXTS), 2, scorer.model.config.hidden_size) and states.dtype == np.float32
    for text, got in zip(TEXTS, states):
        ids = scorer.encode(p.prefix) + scorer.encode(text) + scorer.encode(p.suffix)
        with torch.inference_mode():
            reference = scorer.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
        assert np.allclose(got[0], reference[1][0, -1].float().numpy(), atol=2e-3)
        # The last entry of hidden_states has the final norm applied; the hook takes the layer's own output.
        with torch.inference_mode():
            normed = scorer.model.model.norm(torch.from_numpy(got[1]).to(reference[depth].dtype)[None])
        assert np.allclose(normed[0].float().numpy(), reference[depth][0, -1].float().numpy(), atol=2e-3)
    with pytest.raises(ValueError, match="layers must be between 1 and"):
        scorer.logprobs_and_states(p, TEXTS, layers=[depth + 1])
    assert scorer.logprobs_and_states(p, [], layers=[1])[1].shape == (0, 1, scorer.model.config.hidden_size)


def test_the_device_choice():
    from backend.llm.local import pick_device

    assert pick_device("auto", cuda_available=False) == "cpu"
    assert pick_device("auto", cuda_available=True) == "cuda"
    assert pick_device("cpu", cuda_available=True) == "cpu"
    assert pick_device("cuda", cuda_available=True) == "cuda"
    with pytest.raises(ValueError, match="LLM_DEVICE=cuda, but torch .* sees no CUDA device"):
        pick_device("cuda", cuda_available=False)
    with pytest.raises(ValueError, match="use auto, cpu, cuda"):
        pick_device("tpu", cuda_available=False)


def test_llm_device_and_batch_settings(monkeypatch):
    from backend.settings import Settings, SettingsError

    monkeypatch.setenv("LLM_DEVICE", "CPU")
    assert Settings.from_env().llm_device == "cpu" and Settings.from_env().batch_size == 0  # 0: by device
    monkeypatch.setenv("LLM_DEVICE", "gpu")
    with pytest.raises(SettingsError, match="LLM_DEVICE='gpu': use auto, cpu, cuda"):
        Settings.from_env()


def test_a_cuda_request_on_this_machine_is_one_clear_error(monkeypatch):
    """Where torch sees no GPU (this CPU build), LLM_DEVICE=cuda stops the model from loading with the reason."""
    import torch

    from backend.llm import weights as models
    from backend.serving import service
    from backend.settings import Settings

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    with pytest.raises(models.ModelSourceError, match="sees no CUDA device"):
        service.load_scorer(Settings(llm_device="cuda"), models.ModelSource("unused", "x", "x"))


def test_the_scorer_contract_and_the_predictor_load_without_torch():
    """Only the in-process engine needs torch: the predictor, the server engine and the tools that read
    probabilities import the contract (backend/llm/scorer.py), not the engine."""
    import subprocess
    import sys

    code = (
        "import sys; import backend.llm.predictor, backend.llm.remote, backend.ranking.judge, "
        "backend.quality.llm_vs_human; print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_answers_that_differ_only_in_their_last_token_share_one_branch(scorer):
    from backend.llm.local import _branches
    from backend.llm.scorer import answer_ids

    lines = ["aspects[Acting]: yes", "aspects[Acting]: no", "aspects[Music]: yes", "aspects[Music]: no"]
    distinct, owner = _branches(answer_ids(scorer.encode, lines))
    assert len(distinct) == 2 and owner == [0, 0, 1, 1]
