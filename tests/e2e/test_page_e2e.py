"""The project page in a real browser (tests/browser.py): a project trained against a real Label Studio by the real
backend (gunicorn, the real 0.5B), with gold tasks and a "Label issues" tab made by `labelloop label-issues
--review`; the page's figures and plot against /versions, and its link into Label Studio's review tab.

Saves a screenshot to artifacts/project-page.png, and to docs/screenshot-page.png as well when UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import os
import shutil

import labelstudio
import numpy as np
import pytest
import requests
import warm
from browser import UI_TIMEOUT_MS, chromium_page, log_in_to_label_studio, needs_browser
from helpers import CONFIG, ROOT, gunicorn, wait_for
from label_studio_sdk import LabelStudio

from backend import corpus
from backend.labelstudio import review, sync
from backend.paths import DEMO_GUIDELINES
from backend.quality import gold

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.real_model,
    pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON),
    *needs_browser,
]

ARTIFACT = ROOT / "artifacts" / "project-page.png"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-page.png"
LABELS = ["Positive", "Negative", "Neutral"]
N_LABELED, N_OPEN, FLIPS, N_GOLD = 40, 20, 6, 4


def result(label: str) -> list[dict]:
    return [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}]


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page-backend")
    env = {"DATA_DIR": str(tmp / "data"), "LABEL_STUDIO_URL": label_studio.url}
    env["LABEL_STUDIO_API_KEY"] = label_studio.admin.token
    with gunicorn(env, tmp / "gunicorn.log", wait=180.0) as (url, _):
        yield url, env, tmp / "gunicorn.log"


def runs_of(backend_url: str, project: int) -> dict:
    return requests.get(f"{backend_url}/versions", params={"project": project}, timeout=10).json()


@pytest.fixture(scope="module")
def trained(label_studio, backend, tmp_path_factory):
    """A project with labels (some planted wrong), gold answers (one wrong), two training runs and a review tab."""
    backend_url, env, _ = backend
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    tmp = tmp_path_factory.mktemp("page-project")
    (tmp / "config.xml").write_text(CONFIG)
    project = sync.ensure_project(admin, "Project page", tmp / "config.xml", DEMO_GUIDELINES).id
    admin.projects.update(id=project, description="Reviews from the spring batch.")
    df = corpus.stratified_split(corpus.load(), [N_LABELED + N_OPEN], seed=21)[0].reset_index(drop=True)
    golden = list(gold.default_gold())[:N_GOLD]
    admin.projects.import_tasks(id=project, request=[{"text": t} for t in [*df["text"], *(g.text for g in golden)]])
    connected = sync.connect_backend(admin, project, backend_url, progress=False)
    assert connected.predicted == N_LABELED + N_OPEN + N_GOLD

    ids = {t.data["text"]: t.id for t in admin.tasks.list(project=project, include="id,data")}
    flipped = set(np.random.default_rng(21).choice(N_LABELED, size=FLIPS, replace=False).tolist())
    for i, (text, label) in enumerate(zip(df["text"][:N_LABELED], df["label"][:N_LABELED])):
        given = LABELS[(LABELS.index(label) + 1) % 3] if i in flipped else label
        admin.annotations.create(id=ids[text], result=result(given))
    for i, item in enumerate(golden):  # the last gold answer is wrong
        admin.annotations.create(id=ids[item.text], result=result(item.label if i < N_GOLD - 1 else "Neutral"))

    def settled(check):
        answer = runs_of(backend_url, project)
        return answer if not answer["busy"] and check(answer["training"]) else None

    wait_for("a run on every label", lambda: settled(lambda runs: any(r["labels"] == N_LABELED for r in runs)), 480)
    done = warm.run(
        ["-m", "backend.cli", "label-issues", "--project", str(project), "--review", "--format", "json", "-q"],
        cwd=ROOT,
        env={**os.environ, **env, "DATA_DIR": str(tmp / "issues-data")},
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    requests.post(f"{backend_url}/webhook", json={"action": "START_TRAINING", "project": {"id": project}}, timeout=30)
    state = wait_for(
        "a run that sees the review tab", lambda: settled(lambda runs: runs[-1].get("review_tab") is not None), 480
    )
    return project, admin, state


def test_connect_names_the_page_in_the_projects_description(backend, trained):
    backend_url, _, _ = backend
    project, admin, _ = trained
    description = admin.projects.get(id=project).description
    assert description.startswith("Reviews from the spring batch.")  # the team's text is kept
    assert description.count(f"{sync.PAGE_LINE}{backend_url}/projects/{project}") == 1


def test_the_page_shows_what_versions_says_and_leads_to_the_review_tab(label_studio, backend, trained, tmp_path):
    backend_url, _, log_path = backend
    project, admin, state = trained
    newest = state["training"][-1]
    question = newest["questions"]["sentiment"]
    serving = question["cv_macro_f1"] if question["result"] == "promoted" else question["incumbent_macro_f1"]
    first = next(r for r in state["training"] if "questions" in r)["questions"]["sentiment"]
    tab = newest["review_tab"]
    (me,) = [row for row in newest["gold"]]
    assert (me["n_gold"], me["n_correct"]) == (N_GOLD, N_GOLD - 1)
    assert question["label_issues"] >= 1 and tab["tasks"] >= 1

    with chromium_page(tmp_path / "profile", viewport={"width": 1280, "height": 900}) as page:
        log_in_to_label_studio(page, label_studio.url, label_studio.admin.email, label_studio.admin.password)
        page.goto(f"{backend_url}/ui")
        page.click(f"a[href='projects/{project}']")  # the index leads to the page, by a relative link
        page.wait_for_url(f"{backend_url}/projects/{project}", timeout=UI_TIMEOUT_MS)
        row = page.locator("tr[data-question='sentiment'] td")
        assert row.nth(3).inner_text() == f"{serving:.3f}" and row.nth(4).inner_text() == f"{first['llm_macro_f1']:.3f}"
        assert row.nth(5).inner_text() == str(question["label_issues"])
        recipe = question.get("recipe") or "–"
        if "self_training" in question:  # below 50 labels: what the promoted model learned beyond the labels
            recipe += f" + {question['self_training']['pseudo_labels']} pseudo-labels"
        assert " ".join(row.nth(2).inner_text().split()) == recipe
        assert page.locator("#current").inner_text() == (state["current"] or "the LLM alone")
        assert page.locator("#latest-result").inner_text() == newest["result"]
        plot = page.locator("#learning-curve svg")
        box = plot.bounding_box()
        assert box and box["width"] > 400 and box["height"] > 150  # drawn, at a readable size
        assert "sentiment: serving" in plot.inner_html() and "sentiment: the LLM alone" in plot.inner_html()
        gold_row = page.locator("#gold tr", has_text=me["annotator"]).locator("td")
        assert gold_row.nth(1).inner_text() == str(N_GOLD) and gold_row.nth(2).inner_text() == f"{me['accuracy']:.3f}"
        assert f"holds {tab['tasks']} task" in page.locator("#review").inner_text()

        ARTIFACT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACT), full_page=True)
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(ARTIFACT, DOCS_SCREENSHOT)

        page.click("#review-link")
        page.wait_for_url(f"{label_studio.url}/projects/{project}/data?tab={tab['id']}*", timeout=UI_TIMEOUT_MS)
        try:  # the Data Manager opens the tab, and it holds exactly the flagged tasks
            page.locator(f"text={review.TITLE} >> visible=true").first.wait_for(timeout=UI_TIMEOUT_MS)
            page.get_by_text(f"Tasks: {tab['tasks']} / {N_LABELED + N_OPEN + N_GOLD}").wait_for(timeout=UI_TIMEOUT_MS)
        finally:
            page.screenshot(path=str(ARTIFACT.with_name("project-page-review-tab.png")))
    assert "Traceback" not in log_path.read_text()
