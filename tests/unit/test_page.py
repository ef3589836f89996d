"""The project page and its index through Flask's test client, on the tiny model: every figure as /versions has it,
relative links behind a path prefix, basic auth, and clear errors."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import pytest
from helpers import CONFIG, tiny_predictor
from support.shapes import mismatches

from backend.bench import page_load
from backend.loop.model_store import ModelStore
from backend.serving import page
from backend.serving.app import create_app
from backend.serving.service import ProjectState, Service
from backend.settings import Settings

LS = "http://ls.example:8080"


def make_client(tmp_path, **settings):
    service = Service(Settings(data_dir=tmp_path, label_studio_url=LS, **settings), loader=lambda s: tiny_predictor())
    service.start()
    service.predictor(wait=60)
    return create_app(service).test_client()


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    page_load.write_runs(data, "3", 12)
    return make_client(data)


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.ids: dict[str, str] = {}
        self._open: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        self._open.append(attrs.get("id") or "")

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for name in self._open:
            if name:
                self.ids[name] = self.ids.get(name, "") + data


def read(html: str) -> Links:
    links = Links()
    links.feed(html)
    return links


def test_every_figure_on_the_page_is_the_one_versions_reads(client):
    state = client.get("/versions?project=3").json
    assert mismatches(state, ProjectState) == []  # every key the page reads is declared
    answer = client.get("/projects/3")
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    html = answer.get_data(as_text=True)
    runs = state["training"]
    newest, first = runs[-1]["questions"], runs[0]["questions"]
    rows = re.findall(r'<tr data-question="([^"]+)">(.*?)</tr>', html, re.S)
    assert [name for name, _ in rows] == list(newest) and len(rows) == 3
    for name, row in rows:
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        q = newest[name]
        now = q["cv_macro_f1"] if q["result"] == "promoted" else q["incumbent_macro_f1"]
        assert cells[3] == f"{now:.3f}" and cells[4] == f"{first[name]['llm_macro_f1']:.3f}", cells
        assert cells[5] == str(q["label_issues"])
    # The plot: one line per question for what serves and one for the LLM alone, drawn as inline SVG.
    figure = html[html.index('<figure id="learning-curve">') :]
    assert figure.count("<svg") == 1 and html.count("<svg") == 1
    for name in newest:
        assert f"{name}: serving" in figure and f"{name}: the LLM alone" in figure
    text = read(html).ids
    assert f"{len(runs)} training runs" in html and text["latest-result"] == runs[-1]["result"]
    assert f"accuracy {runs[-1]['routing']['model']['accuracy']:.3f}" not in html  # the LLM serves: its threshold
    doubted = sum(q["label_issues"] for q in newest.values())
    assert f"doubts <b>{doubted}</b> label" in html
    for row in runs[-1]["gold"]:
        assert f"<td>{row['annotator']}</td>" in html


def test_the_review_link_opens_the_label_issues_tab_in_label_studio(client):
    hrefs = read(client.get("/projects/3").get_data(as_text=True)).hrefs
    tab = client.get("/versions?project=3").json["training"][-1]["review_tab"]
    assert f"{LS}/projects/3/data?tab={tab['id']}" in hrefs and f"{LS}/projects/3/data" in hrefs


def test_links_are_relative_so_the_pages_work_behind_a_path_prefix(client):
    # A proxy mounting the backend at /ml passes the prefix as SCRIPT_NAME; nothing on the pages names the root.
    index = client.get("/ui", environ_base={"SCRIPT_NAME": "/ml"}).get_data(as_text=True)
    project = client.get("/projects/3", environ_base={"SCRIPT_NAME": "/ml"}).get_data(as_text=True)
    own = [h for h in read(index).hrefs + read(project).hrefs if not h.startswith(LS)]
    assert own == ["projects/3", "../ui"]
    assert not re.search(r'(href|src)="/', index + project)


def test_the_index_lists_every_project_the_backend_holds(tmp_path):
    page_load.write_runs(tmp_path, "12", 2)
    page_load.write_runs(tmp_path, "4", 1)
    client = make_client(tmp_path)
    client.post("/setup", data=json.dumps({"project": "30.1", "schema": CONFIG}), content_type="application/json")
    assert read(client.get("/ui").get_data(as_text=True)).hrefs == ["projects/4", "projects/12", "projects/30"]
    html = client.get("/projects/30").get_data(as_text=True)  # connected, never trained
    assert "No training run has scored a question yet" in html and "<svg" not in html
    assert "people label everything" in html


def test_a_run_recorded_before_every_question_learned_is_the_first_questions(tmp_path):
    ModelStore(tmp_path, "5").add(
        "v-r1",
        None,
        {"labels": 40, "result": "kept", "cv_macro_f1": 0.6, "incumbent_macro_f1": 0.7, "llm_macro_f1": 0.7},
        False,
    )
    summary = page.summarise("5", make_client(tmp_path).get("/versions?project=5").json)
    (question,) = summary.questions
    assert question.score == 0.7 and question.zero_shot == 0.7 and question.points[0].labels == 40


def test_the_recipe_says_what_the_newest_run_was_self_trained_on(tmp_path):
    store = ModelStore(tmp_path, "5")
    joined = {"unlabeled": 130, "pseudo_labels": 21, "per_label": {"Positive": 7, "Negative": 7, "Neutral": 7}}
    run = {"labels": 21, "result": "promoted", "recipe": "mixed", "cv_macro_f1": 0.7, "incumbent_macro_f1": 0.6}
    store.add("v-r1", None, {**run, "llm_macro_f1": 0.6, "self_training": joined}, False)
    client = make_client(tmp_path)

    def recipe_cell() -> str:
        html = client.get("/projects/5").get_data(as_text=True)
        row = re.search(r'<tr data-question="[^"]+">(.*?)</tr>', html, re.S).group(1)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        return " ".join(re.sub(r"<[^>]+>", "", cells[2]).split())

    assert recipe_cell() == "mixed + 21 pseudo-labels"
    # A newer run on 60 labels was not self-trained: the page follows the newest run.
    store.add("v-r2", None, {**run, "labels": 60, "recipe": "state_blend", "llm_macro_f1": 0.6}, False)
    assert recipe_cell() == "state_blend"


def test_unknown_projects_and_bad_ids_are_clear_json_errors(client):
    missing = client.get("/projects/999")
    assert missing.status_code == 404 and "not known to this backend" in missing.json["error"]
    assert "labelloop sync-project connect" in missing.json["error"]
    for bad in ("abc", "3.5", "-1"):
        answer = client.get(f"/projects/{bad}")
        assert answer.status_code == 400 and "project id" in answer.json["error"], bad


def test_the_pages_need_the_same_basic_auth_as_every_route(tmp_path):
    page_load.write_runs(tmp_path, "3", 1)
    client = make_client(tmp_path, basic_auth_user="lead", basic_auth_pass="s3cret")
    for path in ("/ui", "/projects/3"):
        assert client.get(path).status_code == 401
        token = base64.b64encode(b"lead:s3cret").decode()
        assert client.get(path, headers={"Authorization": f"Basic {token}"}).status_code == 200


def test_finishing_now_reads_the_pools_coverage_else_the_serving_runs_threshold(client):
    state = client.get("/versions?project=3").json
    rule = state["training"][0]["routing"]["model"]
    state["current"] = state["training"][0]["version"]  # as if the first run's model served
    before = read(page.render_project(page.summarise("3", state), LS)).ids["finish"]
    assert f"{rule['threshold']:.3f}" in before and f"lower bound {rule['lower_bound']:.3f}" in before
    assert "measured at the next re-score" in before
    state["coverage"] = {**rule, "unlabeled": 800, "model_can_label": 500, "share": 0.625, "measured": True}
    html = page.render_project(page.summarise("3", state), LS)
    assert read(html).ids["finish-share"] == "62%" and "(500)" in read(html).ids["finish"]
    assert read(html).ids["tasks-left"] == "800"


def test_bench_page_prints_its_timings_and_judges_the_budget(capsys):
    from backend.cli import bench_page

    # A budget no machine misses, so a busy machine cannot fail the test; the tight one below must fail.
    assert bench_page.main(["--runs", "3", "--questions", "2", "--repeats", "2", "--budget-ms", "60000"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["runs"] == 3 and figures["questions"] == 2 and 0 < figures["median_ms"] <= figures["worst_ms"]
    assert figures["bytes"] > 10_000  # the page with its plot
    assert bench_page.main(["--runs", "3", "--repeats", "2", "--budget-ms", "0.001"]) == 1
