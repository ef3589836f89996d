"""Label Studio's own labeling templates, read from its installed wheel, through /setup and /predict on the tiny model.

Every template that pairs a text-like object (<Text>, <HyperText>, <Paragraphs>) with a <Choices> is either served
(a model version, then a prediction Label Studio accepts for a task built from the template's data, with one result
per question filled) or refused with a 422 naming the one feature the backend lacks. EXPECTED pins each outcome and
the questions filled, so a change in the backend or in a newer Label Studio's templates fails here instead of going
unnoticed. `pytest -s -v` prints the outcome per template.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from helpers import ROOT, tiny_predictor
from label_studio_sdk.label_interface import LabelInterface

from backend.serving.app import create_app
from backend.serving.service import Service
from backend.settings import Settings

TEXT_TAGS = {"Text", "HyperText", "Paragraphs"}
# Template (relative to annotation_templates/) -> the questions filled, or a phrase the 422's message must contain.
EXPECTED = {
    "chat/chat_llm_eval": "labels <Chat>",
    "chat/chat_red_team": "labels <Chat>",
    "chat/chat_rlhf": "labels <Chat>",
    "chat/chatbot": "labels <Chat>",
    "community-contributions/breast-cancer-mammogram-classification": "labels <Image>",
    # The sentiment question is filled; the follow-up shown only once a sentiment is chosen is left to the annotator.
    "community-contributions/two-level-sentiment-analysis-of-x-twitter-posts": ("sentiment",),
    # The intent of the dialogue; the slot labels (ParagraphLabels) are left to the annotator.
    "conversational-ai/intent-classification-and-slot-filling": ("intent",),
    # Served as configured, but the Choices names only the dialogue: the model never sees the three responses.
    "conversational-ai/response-selection": ("resp",),
    # Eleven yes/no questions on one dialogue, all filled; the Likert rating is left to the annotator.
    "generative-ai/chatbot-assessment": (
        "fails_to_follow",
        "inappropriate_for_customer",
        "hallucination",
        "satisfies_constraint",
        "contains_sexual",
        "contains_violent",
        "encourages_violence",
        "denigrates_protected_class",
        "gives_harmful_advice",
        "expresses_opinion",
        "expresses_moral_judgment",
    ),
    "natural-language-processing/content-moderation": ("content_moderation",),
    "natural-language-processing/text-classification": ("sentiment",),
    # Multi-label on the query; the template lists "Two" twice, which Label Studio shows as one choice.
    "ranking-and-scoring/document-retrieval": ("selection",),
    # The single-choice "Labeling Confidence" is filled; the dynamic result choices and the rating are not.
    "ranking-and-scoring/serp-ranking": ("confidence",),
    "ranking-and-scoring/text-to-image": 'value="$images"',
}


def _templates_dir() -> Path | None:
    found = sorted((ROOT / ".venv-ls").glob("lib/python*/site-packages/label_studio/annotation_templates"))
    return found[0] if found else None


def _text_templates(root: Path) -> dict[str, str]:
    """name -> labeling config, for the templates with a text-like object and a <Choices>."""
    templates = {}
    for path in sorted(root.glob("**/config.yml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))["config"]
        tags = {element.tag for element in ET.fromstring(config).iter()}
        if tags & TEXT_TAGS and "Choices" in tags:
            templates[str(path.parent.relative_to(root))] = config
    return templates


TEMPLATES_DIR = _templates_dir()
if TEMPLATES_DIR is None:
    pytest.skip(
        "Label Studio is not installed in .venv-ls (make labelstudio): its templates ship in its wheel",
        allow_module_level=True,
    )
TEMPLATES = _text_templates(TEMPLATES_DIR)


def sample_data(config: str) -> dict:
    """The example task a template carries in an XML comment (`{"data": {...}}` or a list of data), if any."""
    for comment in re.findall(r"<!--(.*?)-->", config, flags=re.S):
        try:
            sample = json.loads(comment)
        except ValueError:
            continue  # an ordinary comment
        if isinstance(sample, list) and sample:
            sample = sample[0]
        if isinstance(sample, dict):
            return dict(sample["data"]) if isinstance(sample.get("data"), dict) else dict(sample)
    return {}


def task_data(config: str) -> dict:
    """The template's example data, plus a value of the right shape for each task field it reads but lacks."""
    data = sample_data(config)
    for element in ET.fromstring(config).iter():
        value = element.get("value", "")
        if element.tag not in TEXT_TAGS or not value.startswith("$") or value[1:] in data:
            continue
        if element.tag == "Paragraphs":
            name, text = element.get("nameKey", "author"), element.get("textKey", "text")
            data[value[1:]] = [
                {name: "user", text: "My order never arrived."},
                {name: "assistant", text: "Sorry to hear that, let me check."},
            ]
        elif element.tag == "HyperText":
            data[value[1:]] = "<p>My order <b>never</b> arrived.</p>"
        else:
            data[value[1:]] = "My order never arrived and nobody answers my emails."
    return data


def check_region(config: str, region: dict) -> None:
    """The region fills a whole-task <Choices> on a text-like tag with its own values: one for a single-choice
    question, any number for a multi-label one."""
    elements = {e.get("name"): e for e in ET.fromstring(config).iter() if e.get("name")}
    control = elements.get(region["from_name"])
    assert control is not None and control.tag == "Choices", region
    assert region["to_name"] in [n.strip() for n in control.get("toName", "").split(",")], region
    assert elements[region["to_name"]].tag in TEXT_TAGS, region
    assert control.get("perRegion") != "true" and not control.get("visibleWhen")
    assert region["type"] == "choices"
    values = [c.get("alias") or c.get("value") for c in control.iter("Choice")]
    chosen = region["value"]["choices"]
    assert set(chosen) <= set(values) and len(set(chosen)) == len(chosen), (region, values)
    if control.get("choice", "single") in ("single", "single-radio"):
        assert len(chosen) == 1, region
    else:
        assert control.get("choice") == "multiple" and chosen, region  # a multi-label question with none is left out


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    service = Service(Settings(data_dir=tmp_path_factory.mktemp("templates")), loader=lambda s: tiny_predictor())
    service.start()
    service.predictor(wait=60)
    return create_app(service).test_client()


def _control_xml(config: str, name: str) -> str:
    element = next(e for e in ET.fromstring(config).iter() if e.get("name") == name)
    return ET.tostring(element, encoding="unicode")


def post(client, path: str, body: dict):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def test_the_table_names_every_text_template_of_the_installed_label_studio():
    assert len(TEMPLATES) >= 10, f"only {len(TEMPLATES)} text templates found in {TEMPLATES_DIR}"
    assert set(TEMPLATES) == set(EXPECTED), (
        f"new: {sorted(set(TEMPLATES) - set(EXPECTED))}, gone: {sorted(set(EXPECTED) - set(TEMPLATES))}"
    )


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_template_is_served_or_refused_by_name(client, name):
    config, expected = TEMPLATES[name], EXPECTED.get(name, "(not in EXPECTED)")
    project = f"{900 + sorted(TEMPLATES).index(name)}.1700000000"
    setup = post(client, "/setup", {"project": project, "schema": config})
    if setup.status_code == 422:
        message = setup.get_json()["error"]
        print(f"\n{name}: 422 {message}")
        assert isinstance(expected, str) and expected in message, f"{name}: expected {expected!r}, got 422 {message!r}"
        # The same refusal when Label Studio asks for predictions directly.
        predict = post(client, "/predict", {"tasks": [{"data": task_data(config)}], "label_config": config})
        assert predict.status_code == 422 and predict.get_json()["error"] == message
        return
    assert setup.status_code == 200, setup.get_data(as_text=True)
    version = setup.get_json()["model_version"]
    data = task_data(config)
    answer = post(client, "/predict", {"tasks": [{"id": 1, "data": data}], "project": project, "label_config": config})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    print(f"\n{name}: served, {body['results'][0]['result']} for data keys {sorted(data)}")
    assert isinstance(expected, tuple), f"{name}: expected a 422 naming {expected!r}, but it was served"
    assert "skipped" not in body, body["skipped"]
    (item,) = body["results"]
    filled = [region["from_name"] for region in item["result"]]
    # Every single-choice question gets a result; a multi-label one may have no label that applies.
    single = {q for q in expected if 'choice="multiple"' not in _control_xml(config, q)}
    assert single <= set(filled) <= set(expected) and filled == [q for q in expected if q in filled], filled
    for region in item["result"]:
        check_region(config, region)
    assert 0 < item["score"] <= 1 and item["model_version"] == body["model_version"] == version
    # What Label Studio's own SDK checks before it stores a prediction.
    assert LabelInterface(config).validate_prediction(item, return_errors=True) == []
