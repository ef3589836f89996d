"""LLM_MODEL=cascade with the two packaged models: the student reads the 1.5B's answers from the 0.5B's state, the
1.5B answers again exactly the reviews the student is least sure of (the threshold measured on a pool of reviews),
and the cascade gets obvious reviews right."""

import numpy as np
import pytest
from helpers import CONFIG

from backend import corpus
from backend.labelstudio import schema as schemas
from backend.llm.cascade import Cascade, margins
from backend.serving.service import load_predictor
from backend.settings import Settings

pytestmark = pytest.mark.real_model

OBVIOUS = {
    "I loved every minute of it": "Positive",
    "A dull, lifeless sequel": "Negative",
    "The film runs 118 minutes": "Neutral",
}


def test_the_packaged_cascade_refines_the_reviews_the_smaller_model_doubts(tmp_path):
    # A larger share than the default 0.05, so that 40 reviews surely have some the 1.5B answers again.
    predictor = load_predictor(Settings(llm_model="cascade", cascade_share=0.3, data_dir=tmp_path))
    assert isinstance(predictor, Cascade)
    config = schemas.parse_config(CONFIG)
    name = config.primary.from_name
    texts = list(corpus.load().sample(40, random_state=1)["text"])
    pool = predictor.measure_pool(config, texts)
    version = predictor.version(config, pool)
    assert version.startswith("qwen2.5-coder-0.5b-instruct+qwen2.5-coder-1.5b-instruct-cascade30-"), version

    assert pool.student is not None and pool.student.layer == 15
    first = predictor.deciding(config, texts, predictor.first_answers(config, texts, pool), pool)[name]
    unsure = margins(config, {name: first}) < pool.unsure_below
    # About the share: the threshold was set on the student's answers out of fold.
    assert 0.05 <= unsure.mean() <= 0.5, unsure.mean()
    served = predictor.answers(config, texts, pool)[name]
    second = predictor.second.answers(config, [t for t, u in zip(texts, unsure) if u], pool.second)[name]
    np.testing.assert_allclose(served[unsure], second, atol=2e-3)
    np.testing.assert_array_equal(served[~unsure], first[~unsure])

    obvious = predictor.answers(config, list(OBVIOUS), pool)[name]
    assert [config.primary.labels[i] for i in obvious.argmax(1)] == list(OBVIOUS.values())
