"""Both packaged models (Qwen2.5-Coder-0.5B- and 1.5B-Instruct), served by gunicorn as `make serve` does, on
obvious reviews."""

import pytest
import requests
from helpers import CONFIG, gunicorn

pytestmark = pytest.mark.real_model

OBVIOUS = {
    "I loved every minute of it": "Positive",
    "A dull, lifeless sequel": "Negative",
    "The film runs 118 minutes": "Neutral",
}


NAMES = {"embedded": "qwen2.5-coder-0.5b-instruct", "embedded-1.5b": "qwen2.5-coder-1.5b-instruct"}


@pytest.fixture(scope="module", params=list(NAMES))
def server(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    # The first start of the 1.5B joins and converts its GGUF (about two minutes, once).
    with gunicorn({"DATA_DIR": str(tmp / "data"), "LLM_MODEL": request.param}, tmp / "gunicorn.log", wait=600) as (
        url,
        _,
    ):
        yield url, request.param


def test_obvious_reviews_with_fitted_calibration(server):
    server, model = server
    version = requests.post(f"{server}/setup", json={"project": "1.1", "schema": CONFIG}).json()["model_version"]
    assert version.startswith(NAMES[model])  # each packaged model is its own version
    assert "-fitted-" in version  # the calibration shipped in guidelines/calibration/ matches model and prompt
    tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(OBVIOUS)]
    results = requests.post(f"{server}/predict", json={"tasks": tasks, "label_config": CONFIG}, timeout=120).json()[
        "results"
    ]
    got = [r["result"][0]["value"]["choices"][0] for r in results]
    assert got == list(OBVIOUS.values())
    # The score is the task's priority (margin by default: 1 - the gap between the two best labels is the
    # uncertainty, so a confident answer scores high and is asked late); the ordering is tested in test_loop.py.
    assert all(0 <= r["score"] <= 1 for r in results)


def test_other_label_names_are_served_by_the_same_model(server):
    server, _ = server
    config = (
        '<View><Text name="body" value="$review"/><Choices name="verdict" toName="body">'
        '<Choice value="Positive"/><Choice value="Negative"/></Choices></View>'
    )
    tasks = [
        {"data": {"review": "An absolute delight from start to finish."}},
        {"data": {"review": "Painfully boring."}},
    ]
    results = requests.post(f"{server}/predict", json={"tasks": tasks, "label_config": config}, timeout=120).json()[
        "results"
    ]
    assert [r["result"][0]["value"]["choices"][0] for r in results] == ["Positive", "Negative"]
    assert results[0]["result"][0]["from_name"] == "verdict"


FACETS = {  # text -> (sentiment, a label aspects must hold, spoiler); None: not asked of that text
    "An absolute joy from start to finish: the lead is wonderful and the soundtrack is gorgeous.": (
        "Positive",
        "Music",
        "No",
    ),
    # Not a spoiler, but the 0.5B sits on the fence there (p(Yes) 0.47 alone, 0.51 packed with the others): not an
    # obvious case for that question, so it is not asked of it.
    "Dull, ugly and far too long. I walked out after an hour.": ("Negative", None, None),
    "In the final scene the hero dies, and his own brother turns out to be the killer.": (None, "Story", "Yes"),
    "The film runs 118 minutes and opens in theaters on Friday.": ("Neutral", None, "No"),
    "Stunning cinematography, every frame looks like a painting.": ("Positive", "Visuals", "No"),
    "The score by the orchestra is haunting and beautiful.": ("Positive", "Music", "No"),
}


def test_three_questions_of_the_facets_demo_on_obvious_reviews():
    """The 0.5B with guidelines/review_facets.md and its shipped calibration answers every question in one pass."""
    from dataclasses import replace

    from backend.labelstudio import schema as schemas
    from backend.loop.answers import regions
    from backend.paths import ROOT
    from backend.serving.service import load_predictor
    from backend.settings import Settings

    predictor = load_predictor(
        replace(Settings.from_env(), llm_model="embedded", guidelines=ROOT / "guidelines" / "review_facets.md")
    )
    config = schemas.parse_config((ROOT / "label_config" / "review_facets.xml").read_text())
    assert "-fitted-" in predictor.version(config)  # guidelines/calibration/forms/ matches model and prompt
    answers = predictor.answers(config, list(FACETS))
    for i, (text, (sentiment, aspect, spoiler)) in enumerate(FACETS.items()):
        got = {r["from_name"]: r["value"]["choices"] for r in regions(config, {q: a[i] for q, a in answers.items()})}
        assert sentiment is None or got["sentiment"] == [sentiment], (text, got)
        assert aspect is None or aspect in got.get("aspects", []), (text, got)
        assert spoiler is None or got["spoiler"] == [spoiler], (text, got)
