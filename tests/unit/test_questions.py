"""Several questions per config, multi-label questions and guidelines per question, on the tiny LLM.

The real-model check is in test_real_model.py; Label Studio's own templates in test_templates.py; a real Label
Studio in test_e2e_questions.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import ROOT, tiny_predictor
from label_studio_sdk.label_interface import LabelInterface
from support.loop import FakeProject, make_service

from backend import guidelines as guides
from backend.labelstudio import schema as schemas
from backend.labelstudio import tasks as ls_tasks
from backend.learning import classifier
from backend.llm import prompt as prompts
from backend.llm.predictor import form_probabilities
from backend.loop import training
from backend.ranking import strategies
from backend.serving.app import create_app
from backend.serving.service import Service
from backend.settings import Settings

FACETS = (ROOT / "label_config" / "review_facets.xml").read_text()
FACETS_GUIDELINES = ROOT / "guidelines" / "review_facets.md"
SAMPLE = [
    json.loads(line) for line in (ROOT / "guidelines" / "samples" / "review_facets.jsonl").read_text().splitlines()
]
CONFIG = schemas.parse_config(FACETS)


@pytest.fixture(scope="module")
def predictor():
    return tiny_predictor(guidelines_path=FACETS_GUIDELINES)


# ---------------------------------------------------------------- guidelines per question


def test_the_demo_guidelines_describe_each_question_of_the_demo_config():
    g = guides.load(FACETS_GUIDELINES)
    assert set(g.questions) == set(CONFIG.names) == {"sentiment", "aspects", "spoiler"}
    for name in CONFIG.names:
        own = g.for_question(name)
        assert {"Labels", "Rules", "Examples"} <= set(own.sections), name
        labels = CONFIG.question(name).labels
        assert own.examples and all(set(label.split(", ")) <= set(labels) | {"none"} for _, label in own.examples)
    # Shared sections reach every question; another question's rules reach none.
    assert "Overview" in g.for_question("spoiler").prompt_sections
    assert g.for_question("spoiler").sections["Rules"] != g.for_question("sentiment").sections["Rules"]


def test_the_sample_is_labeled_with_the_configs_own_labels():
    assert len(SAMPLE) >= 200
    for item in SAMPLE:
        assert item["sentiment"] in CONFIG.question("sentiment").labels
        assert item["spoiler"] in CONFIG.question("spoiler").labels
        assert set(item["aspects"]) <= set(CONFIG.question("aspects").labels)


def test_a_single_question_prompt_reads_the_shared_sections_and_its_own(predictor):
    config = schemas.parse_config(FACETS)
    spoiler = predictor.setup(config.question("spoiler")).prompt.prefix
    sentiment = predictor.setup(config.question("sentiment")).prompt.prefix
    rules = guides.load(FACETS_GUIDELINES).for_question
    assert rules("spoiler").sections["Rules"] in spoiler and rules("spoiler").sections["Rules"] not in sentiment
    assert "Overview" not in spoiler or "## Overview" in spoiler


def test_guidelines_without_question_sections_give_the_same_prompt_as_before(predictor):
    g = guides.load()  # the sentiment demo's: no question sections
    assert g.questions == {} and g.for_question("sentiment") is g


def test_the_form_prompt_names_every_question_and_scores_every_answer_line(predictor):
    setup = predictor.form_setup(CONFIG)
    assert setup.prompt.labels == (
        "sentiment: Positive",
        "sentiment: Negative",
        "sentiment: Neutral",
        "aspects: Acting",
        "aspects: Story",
        "aspects: Visuals",
        "aspects: Music",
        "aspects: none",
        "spoiler: Yes",
        "spoiler: No",
    )
    for name in CONFIG.names:
        assert f"## Question: {name}" in setup.prompt.prefix
    assert "`aspects: none` if none applies" in setup.prompt.prefix
    assert setup.calibrations["sentiment"].thresholds == () and setup.calibrations["spoiler"].labels == ("Yes", "No")
    assert setup.calibrations["aspects"].labels == ("Acting", "Story", "Visuals", "Music", "none")
    assert setup.calibrations["aspects"].thresholds == pytest.approx((0.2,) * 4)


def test_a_label_called_none_keeps_its_name():
    q = schemas.parse(
        '<View><Text name="t" value="$text"/><Choices name="c" toName="t" choice="multiple">'
        '<Choice value="None"/><Choice value="Some"/></Choices></View>'
    )
    assert prompts.answers(q) == ["c: None", "c: Some", "c: no label"]


def test_the_model_version_covers_every_questions_guidelines(tmp_path):
    changed = tmp_path / "facets.md"
    text = FACETS_GUIDELINES.read_text()
    marker = "### Rules"
    at = text.index(marker, text.index("## Question: spoiler"))
    changed.write_text(text[:at] + "A new sentence about spoilers only.\n\n" + text[at:])
    before = tiny_predictor(guidelines_path=FACETS_GUIDELINES).version(CONFIG)
    after = tiny_predictor(guidelines_path=changed).version(CONFIG)
    assert before != after
    # The sentiment question asked alone does not read the spoiler section: its version stays.
    sentiment = schemas.parse_config(FACETS).question("sentiment")
    assert (
        tiny_predictor(guidelines_path=FACETS_GUIDELINES).setup(sentiment).model_version
        == tiny_predictor(guidelines_path=changed).setup(sentiment).model_version
    )


# ---------------------------------------------------------------- probabilities


def test_each_label_of_a_multi_label_question_is_set_against_its_own_threshold(predictor):
    texts = [item["text"] for item in SAMPLE[:6]]
    answers = predictor.answers(CONFIG, texts)
    assert answers["sentiment"].shape == (6, 3) and np.allclose(answers["sentiment"].sum(1), 1)
    assert answers["spoiler"].shape == (6, 2) and np.allclose(answers["spoiler"].sum(1), 1)
    aspects = answers["aspects"]
    assert aspects.shape == (6, 4) and ((aspects > 0) & (aspects < 1)).all()
    # By hand: each label's share among the labels and "none", its logit moved by its threshold's.
    setup = predictor.form_setup(CONFIG)
    lp = predictor.scorer.label_logprobs(setup.prompt, texts)
    z = lp[:, 3:8] + np.asarray(setup.calibrations["aspects"].bias)
    share = np.exp(z - np.logaddexp.reduce(z, axis=1, keepdims=True))[:, :4]
    expected = 1 / (1 + np.exp(-(np.log(share / (1 - share)) - np.log(0.2 / 0.8))))
    assert aspects == pytest.approx(expected, abs=1e-6)
    assert form_probabilities(CONFIG, setup.calibrations, lp)["aspects"] == pytest.approx(aspects)
    # A share at the threshold is 0.5: chosen.
    assert ((aspects >= 0.5) == (share >= 0.2)).all()


def test_all_questions_are_scored_in_one_pass_over_the_text(predictor, monkeypatch):
    calls = []
    real = predictor.scorer.label_logprobs
    monkeypatch.setattr(predictor.scorer, "label_logprobs", lambda *a, **k: calls.append(a) or real(*a, **k))
    predictor.form_setup(CONFIG)
    calls.clear()
    predictor.answers(CONFIG, ["A fine film.", "Dull."])
    assert len(calls) == 1


# ---------------------------------------------------------------- predictions through the API


def post(client, path: str, body: dict):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_a_prediction_holds_one_result_per_question_and_setup_names_what_is_left_out(tmp_path, predictor, caplog):
    service = Service(Settings(data_dir=tmp_path), loader=lambda s: predictor)
    service.start()
    client = create_app(service).test_client()
    caplog.set_level("INFO")
    setup = post(client, "/setup", {"project": "3.1", "schema": FACETS})
    assert setup.status_code == 200
    assert "notes is not pre-filled: <TextArea> is not a choice" in caplog.text
    tasks = [{"id": i + 1, "data": {"text": item["text"]}} for i, item in enumerate(SAMPLE[:8])]
    body = post(client, "/predict", {"tasks": tasks, "project": "3.1", "label_config": FACETS}).get_json()
    interface = LabelInterface(FACETS)
    for item in body["results"]:
        names = [r["from_name"] for r in item["result"]]
        assert names[0] == "sentiment" and names[-1] == "spoiler" and set(names) <= {"sentiment", "aspects", "spoiler"}
        assert interface.validate_prediction(item, return_errors=True) == []
        assert item["model_version"] == setup.get_json()["model_version"]
    versions = client.get("/versions?project=3").get_json()
    assert [q["name"] for q in versions["questions"]["filled"]] == ["sentiment", "aspects", "spoiler"]
    assert versions["questions"]["filled"][1]["multiple"] is True
    assert versions["questions"]["left_out"] == [
        {"name": "notes", "reason": "<TextArea> is not a choice: left to the annotator"}
    ]


def test_multi_label_results_hold_every_label_at_or_above_half(predictor):
    from backend.loop.answers import regions

    aspects = CONFIG.question("aspects")
    assert aspects.chosen(np.array([0.9, 0.2, 0.5, 0.49])) == ["Acting", "Visuals"]
    rows = {"sentiment": np.array([0.1, 0.7, 0.2]), "aspects": np.zeros(4), "spoiler": np.array([0.4, 0.6])}
    assert [r["from_name"] for r in regions(CONFIG, rows)] == ["sentiment", "spoiler"]  # no aspect applies: no result
    assert regions(CONFIG, rows)[0]["value"]["choices"] == ["Negative"]


def test_the_ranking_reads_a_multi_label_question_by_its_most_uncertain_label():
    probs = np.array([[0.99, 0.02, 0.6], [0.5, 0.9, 0.1]])
    binary, llm = strategies.most_uncertain_label(probs, np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.1]]))
    assert binary == pytest.approx(np.array([[0.6, 0.4], [0.5, 0.5]]))
    assert llm == pytest.approx(np.array([[0.2, 0.8], [0.3, 0.7]]))
    priority = strategies.pointwise_priority("margin", binary)
    assert priority[1] < priority[0]  # a label at 0.5 is asked before one at 0.6


# ---------------------------------------------------------------- annotations and training


def test_a_multi_label_annotation_is_the_set_chosen_and_none_is_an_answer():
    aspects = CONFIG.question("aspects")

    def annotation(*choices, user=1):
        result = [
            {"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": ["Positive"]}}
        ]
        if choices:
            result.append(
                {"from_name": "aspects", "to_name": "review", "type": "choices", "value": {"choices": list(choices)}}
            )
        return {"result": result, "completed_by": user, "updated_at": f"2026-11-30T0{user}:00:00Z"}

    assert ls_tasks.annotation_label(annotation("Music", "Acting"), aspects) == aspects.key(["Acting", "Music"])
    assert ls_tasks.annotation_label(annotation(), aspects) == ""
    votes = [annotation("Story", user=1), annotation("Story", user=2), annotation("Story", "Music", user=3)]
    assert ls_tasks.resolve(votes, aspects) == "Story"


def test_a_multi_label_model_learns_each_label_and_keeps_the_llms_where_it_cannot():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 8)).astype(np.float32)
    y = np.stack([(x[:, 0] > 0), (x[:, 1] > 0), np.zeros(80, dtype=bool)], axis=1).astype(int)
    llm = np.full((80, 3), 0.3)
    model = classifier.fit("blend", x, llm, y, 3)
    p = model.predict_proba(x, llm)
    assert p.shape == (80, 3) and ((p[:, 0] >= 0.5) == y[:, 0].astype(bool)).mean() > 0.9
    assert p[:, 2] == pytest.approx(llm[:, 2])  # never chosen: nothing to learn, the LLM's probability stays
    oof = classifier.out_of_fold("blend", x, llm, y, 3)
    assert oof.shape == (80, 3) and ((oof[:, 1] >= 0.5) == y[:, 1].astype(bool)).mean() > 0.8
    with pytest.raises(classifier.TrainingError, match="yes and"):
        classifier.fit("blend", x, llm, np.zeros((80, 3), dtype=int), 3)


class FacetsProject(FakeProject):
    """The demo sample as a project whose first question is `first` (the one a trained model learns)."""

    def __init__(self, config: str, first: str) -> None:
        super().__init__(n_tasks=10, n_labeled=0)
        question = schemas.parse_config(config).question(first)
        self.tasks = [(item["id"], item["text"]) for item in SAMPLE]
        self.labels = {
            item["id"]: question.key(item[first]) if question.multiple else item[first] for item in SAMPLE[:150]
        }
        self.client.projects.get = lambda id: type("P", (), {"label_config": config})()


def _reordered(first: str) -> str:
    """The facets config with the `first` question moved to the front."""
    start = FACETS.index(f'<Choices name="{first}"')
    end = FACETS.index("</Choices>", start) + len("</Choices>")
    block = FACETS[start:end]
    rest = FACETS[:start] + FACETS[end:]
    at = rest.index('<Choices name="')
    return rest[:at] + block + "\n  " + rest[at:]


@pytest.mark.parametrize("first", ["sentiment", "aspects"])
def test_training_learns_the_first_question_single_or_multi_label(tmp_path, predictor, monkeypatch, first):
    config = _reordered(first)
    project = FacetsProject(config, first)
    project.install(monkeypatch)
    # Sentence embeddings: the tiny random LLM's hidden states carry nothing to learn from.
    service = make_service(tmp_path, predictor, project, llm_feature_depth=0.0)
    record = service.loop.train("5")
    assert record["result"] == "promoted", {k: record.get(k) for k in ("cv_macro_f1", "incumbent_macro_f1", "reason")}
    assert record["labels"] == 150 and 0 < record["cv_macro_f1"] <= 1
    assert ("routing" in record) is (first == "sentiment")  # finishing is defined for single-choice questions
    assert service.loop.rescoring.wait("5", timeout=180)
    parsed = schemas.parse_config(config)
    interface = LabelInterface(config)
    assert len(project.pushed) == len(SAMPLE)
    for item in project.pushed:
        assert item["model_version"] == record["version"]
        assert interface.validate_prediction({"result": item["result"]}, return_errors=True) == []
    # The trained model answers the first question, the LLM the others, under the trained model's version.
    task = {"id": 500, "data": {"text": SAMPLE[200]["text"]}}
    results, _, version = service.loop.predict("5", parsed, [task])
    assert version == record["version"]
    assert {r["from_name"] for r in results[0]["result"]} >= {q.from_name for q in parsed.questions if not q.multiple}
    # Labeled tasks go to the back of the queue, under the most-uncertain-label rule for a multi-label question.
    scores = {p["task"]: p["score"] for p in project.pushed}
    assert max(scores[i] for i in range(151, 241)) < min(scores[i] for i in project.labels)


def test_every_question_learns_and_a_questions_promotion_keeps_the_others_models(tmp_path, predictor, monkeypatch):
    project = FacetsProject(FACETS, "sentiment")
    learned = ("sentiment", "aspects")  # the first run: spoiler has no labels yet
    project.answers = {
        item["id"]: {q.from_name: _answer(q, item) for q in CONFIG.questions if q.from_name in learned}
        for item in SAMPLE[:150]
    }
    project.install(monkeypatch)
    service = make_service(tmp_path, predictor, project, llm_feature_depth=0.0)
    client = create_app(service).test_client()
    post(client, "/setup", {"project": "5.1", "schema": FACETS})
    first = service.loop.train("5")
    assert first["result"] == "promoted"
    assert {name: q["result"] for name, q in first["questions"].items()} == {
        "sentiment": "promoted",
        "aspects": "promoted",
        "spoiler": "skipped",
    }
    assert first["questions"]["aspects"]["labels"] == 150 and 0 < first["questions"]["aspects"]["cv_macro_f1"] <= 1
    assert first["cv_macro_f1"] == first["questions"]["sentiment"]["cv_macro_f1"]  # the first question's, as before
    assert service.loop.rescoring.wait("5", timeout=180)
    current = service.loop.projects.model("5")
    assert current.version == first["version"] and set(current.models) == set(learned)
    # Each trained question is answered by its model, not the LLM: what the model says differs from the LLM's.
    texts = [item["text"] for item in SAMPLE[150:]]
    served = service.loop.answers(CONFIG, texts, current)
    llm = service.loop.answers(CONFIG, texts, None)
    for name in learned:
        assert not np.allclose(served[name], llm[name]), name
    assert np.allclose(served["spoiler"], llm["spoiler"])

    # Spoiler's labels arrive: spoiler is promoted, the others keep their models (same labels, no better).
    for item in SAMPLE[:150]:
        project.answers[item["id"]]["spoiler"] = item["spoiler"]
    second = service.loop.train("5")
    assert {name: q["result"] for name, q in second["questions"].items()} == {
        "sentiment": "kept",
        "aspects": "kept",
        "spoiler": "promoted",
    }
    assert second["result"] == "promoted" and second["version"] != first["version"]
    current = service.loop.projects.model("5")
    assert current.version == second["version"]
    assert {name: m.version for name, m in current.models.items()} == {
        "sentiment": first["version"],
        "aspects": first["version"],
        "spoiler": second["version"],
    }
    assert service.loop.rescoring.wait("5", timeout=180)
    assert {p["model_version"] for p in project.pushed} == {second["version"]}
    versions = client.get("/versions?project=5").get_json()
    assert versions["current"] == second["version"]
    filled = {q["name"]: q for q in versions["questions"]["filled"]}
    assert {name: (q["trained"], q["model"]) for name, q in filled.items()} == {
        "sentiment": (True, first["version"]),
        "aspects": (True, first["version"]),
        "spoiler": (True, second["version"]),
    }
    assert filled["spoiler"]["cv_macro_f1"] == second["questions"]["spoiler"]["cv_macro_f1"]
    # A restarted backend serves the same set.
    restarted = make_service(tmp_path, predictor, project, llm_feature_depth=0.0)
    again = restarted.loop.projects.model("5")
    assert again.version == second["version"] and set(again.models) == {"sentiment", "aspects", "spoiler"}


def _answer(question, item: dict) -> str:
    return question.key(item[question.from_name]) if question.multiple else item[question.from_name]


def test_multi_label_targets_and_guesses():
    aspects = CONFIG.question("aspects")
    y = aspects.targets([aspects.key(["Story"]), "", aspects.key(["Acting", "Music"])])
    assert y.tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]
    assert aspects.decisions(np.array([[0.6, 0.4, 0.5, 0.1]])).tolist() == [[1, 0, 1, 0]]
    assert training._decode(training._code(np.array([1, 0, 1, 1])), y).tolist() == [1, 0, 1, 1]


def test_a_config_without_a_fillable_question_is_still_a_422(tmp_path, predictor):
    service = Service(Settings(data_dir=tmp_path), loader=lambda s: predictor)
    service.start()
    client = create_app(service).test_client()
    config = (
        '<View><Text name="t" value="$text"/><TextArea name="a" toName="t"/>'
        '<Choices name="c" toName="t" perRegion="true"><Choice value="x"/><Choice value="y"/></Choices></View>'
    )
    answer = post(client, "/setup", {"project": "3.1", "schema": config})
    assert answer.status_code == 422 and "per-region" in answer.get_json()["error"]


# ---------------------------------------------------------------- calibration and measurement


def test_a_fitted_form_calibration_gives_each_label_its_own_threshold(predictor, tmp_path):
    from backend.bench import questions
    from backend.llm import calibration as cal

    items = SAMPLE[:60]
    setup = predictor.form_setup(CONFIG)
    logprobs = predictor.scorer.label_logprobs(setup.prompt, [item["text"] for item in items])
    fitted = questions.fit_form_calibration(CONFIG, logprobs, items, setup.calibrations)
    assert {c.method for c in fitted.values()} == {"fitted"}
    aspects = fitted["aspects"]
    assert aspects.features == setup.calibrations["aspects"].features and aspects.fitted_on == 60
    grid = np.array([0.05, 0.1, 0.2, 0.4, 0.6])  # the default 1/5, times 1/4 to 3
    assert len(aspects.thresholds) == 4 and all(np.isclose(grid, t).any() for t in aspects.thresholds)
    # Saved under forms/, it is what CALIBRATION=auto serves for this prompt and model.
    cal.save_form(tmp_path / "forms" / "facets.json", fitted, setup.prompt.sha256, predictor.source.identity)
    served = tiny_predictor(calibration="auto", guidelines_path=FACETS_GUIDELINES)
    served.calibration_dir = tmp_path
    assert served.form_setup(CONFIG).calibrations == fitted
    assert "-fitted-" in served.version(CONFIG) and served.version(CONFIG) != predictor.version(CONFIG)


def test_the_measurement_reports_every_question_and_the_speed_of_one_against_three(predictor):
    from backend.bench import questions

    one = schemas.Config(CONFIG.questions[:1])
    result = questions.run(predictor, CONFIG, SAMPLE[:40], 20, [20, 100], 1, {"1": one, "3": CONFIG})
    assert (result["train"], result["test"]) == (20, 20)
    for name in CONFIG.names:
        row = result["questions"][name]
        assert 0 <= row["zero_shot"]["macro_f1"] <= 1 and row["after_100"] is None  # more labels than the sample
        assert "macro_f1" in row["after_20"] or "error" in row["after_20"]
    aspects = result["questions"]["aspects"]
    assert {"micro_f1", "macro_f1", "hamming_loss"} <= set(aspects["zero_shot"])
    assert set(aspects["methods"]) == {"yes_no_per_label", "among_the_set (served)"}
    assert set(result["reviews_per_s"]) == {"1", "3"} and min(result["reviews_per_s"].values()) > 0


def test_the_commands_refuse_a_sample_or_config_they_cannot_use(tmp_path, capsys):
    from backend.cli import bench_questions, calibrate

    sample = tmp_path / "sample.jsonl"
    sample.write_text(json.dumps({"text": "fine", "sentiment": "Positive"}) + "\n")
    assert bench_questions.main(["--sample", str(sample)]) == 1
    assert "lack aspects, spoiler" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        calibrate.main(["--config", str(ROOT / "label_config" / "review_facets.xml")])
    assert exit_.value.code == 2 and "give a labeled --sample" in capsys.readouterr().err
