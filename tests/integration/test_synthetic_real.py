"""The packaged Qwen2.5-Coder-0.5B-Instruct writes synthetic candidates and checks their labels (about a minute)."""

import numpy as np
import pytest
from helpers import CONFIG

from backend.labelstudio import schema as schemas
from backend.synthetic import filters as sf
from backend.synthetic import generate as syn

pytestmark = pytest.mark.real_model

SCHEMA = schemas.parse(CONFIG)


@pytest.fixture(scope="module")
def predictor():
    from backend.serving.service import load_predictor
    from backend.settings import Settings

    return load_predictor(Settings())


def test_the_real_model_writes_candidates_with_provenance(predictor, tmp_path):
    real = syn.corpus_sample(60, seed=1)
    out = tmp_path / "candidates.jsonl"
    sampling = syn.Sampling(max_new_tokens=48, batch_size=4)
    result = syn.generate(
        predictor,
        real,
        out,
        mix={"conditional": 2, "paraphrase": 2},
        seed=3,
        sampling=sampling,
        labels=SCHEMA.labels,
        progress=False,
    )
    items = syn.read_candidates(out)
    assert result.written == len(items) == 4
    for item in items:
        assert item["provenance"]["model"] == "qwen2.5-coder-0.5b-instruct"
        assert item["provenance"]["model_identity"].startswith("gguf:")
    finished = [i for i in items if i["finished"]]
    assert finished, [i["raw"] for i in items]
    # The instruct model answers in English prose: mostly Latin letters, several words, no chat template tokens.
    for item in finished:
        letters = [c for c in item["text"] if c.isalpha()]
        assert len(item["text"].split()) >= 3 and "<|im_" not in item["raw"]
        assert sum(c.isascii() for c in letters) / len(letters) > 0.9, item["text"]


def test_the_real_llm_verifies_intended_labels(predictor):
    llm = sf.cached_llm_probs(predictor, SCHEMA, None)
    cases = [
        ("An absolute delight: warm, witty and beautifully acted.", "Positive", "accepted"),
        ("An absolute delight: warm, witty and beautifully acted!", "Negative", "rejected"),
        # A plain fact (p(Neutral) 0.93); a plot line such as "A retired pilot ... restores a seaplane" sat at 0.497,
        # on the threshold, and its answer flipped with the batch.
        ("The film runs 118 minutes and opens in theaters on Friday.", "Neutral", "accepted"),
        ("Two hours of my life I will never get back; avoid it.", "Positive", "rejected"),
    ]
    candidates = [
        {"id": f"c{n}", "text": text, "intended_label": label, "finished": True}
        for n, (text, label, _) in enumerate(cases)
    ]
    orthogonal = lambda texts: np.eye(len(texts))  # noqa: E731  (no embedding duplicates among these)
    out = sf.run_filters(candidates, [], SCHEMA.labels, orthogonal, llm_probs=llm)
    assert [o["filter"]["status"] for o in out] == [c[2] for c in cases], [o["filter"] for o in out]
    assert all(o["filter"]["reason"] in (None, "label-llm") for o in out)
