"""The labeling UI in a real browser (tests/browser.py): a task of a demo-like project opens with the model's choice
selected. Saves a screenshot to artifacts/browser-task.png, and to docs/screenshot-task.png as well when
UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import os
import shutil

import labelstudio
import pytest
from browser import UI_TIMEOUT_MS, chromium_page, log_in_to_label_studio, needs_browser
from labelstudio import ROOT

from backend.dev import demo
from backend.labelstudio import schema, sync
from backend.labelstudio.client import connect
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES

ARTIFACT = ROOT / "artifacts" / "browser-task.png"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot-task.png"
N_TASKS = 12

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON),
    *needs_browser,
]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with chromium_page(tmp_path_factory.mktemp("chromium-profile")) as opened:
        yield opened


@pytest.fixture(scope="module")
def demo_project(label_studio, backend_server):
    """The demo's project, made the demo's way, in the session's Label Studio: its id and the SDK client."""
    client = connect(label_studio.url, label_studio.admin.token).client
    project = sync.ensure_project(client, demo.TITLE, DEMO_CONFIG, DEMO_GUIDELINES)
    sync.import_tasks(client, project.id, demo.sample_tasks(N_TASKS), progress=False)
    result = sync.connect_backend(client, project.id, backend_server.url, progress=False)
    assert result.predicted == result.tasks > 0
    return project.id, client


def test_task_opens_with_the_prediction_selected(label_studio, demo_project, page):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    project_id, client = demo_project
    project = client.projects.get(id=project_id)
    labels = schema.parse(project.label_config).labels
    task = min(client.tasks.list(project=project_id, fields="all"), key=lambda t: t.id)
    (prediction,) = [p for p in task.predictions if p.model_version == project.model_version]
    predicted = prediction.result[0]["value"]["choices"][0]

    log_in_to_label_studio(page, label_studio.url, label_studio.admin.email, label_studio.admin.password)

    page.goto(f"{label_studio.url}/projects/{project_id}/data?task={task.id}")
    # Label Studio 1.23 draws every Choice, single-choice too, as an antd checkbox named after the choice;
    # the prediction pre-fills the annotator's new annotation, so the predicted one is checked.
    choices = page.locator(".lsf-choices input.ant-checkbox-input")
    choices.first.wait_for(timeout=UI_TIMEOUT_MS)
    page.get_by_text(task.data["text"][:40]).first.wait_for(timeout=UI_TIMEOUT_MS)
    try:
        page.wait_for_load_state("networkidle", timeout=10_000)  # the annotation tabs settle after the choices
    except PlaywrightTimeout:  # a poll that never idles only costs the wait; the screenshot is still worth taking
        pass

    ARTIFACT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACT))
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACT, DOCS_SCREENSHOT)

    shown = {choices.nth(i).get_attribute("name"): choices.nth(i).is_checked() for i in range(choices.count())}
    assert shown == {label: label == predicted for label in labels}, f"prediction {predicted!r}, page shows {shown}"
    checked_wrapper = page.locator(".lsf-choices .ant-checkbox-wrapper-checked")
    assert checked_wrapper.count() == 1 and checked_wrapper.inner_text().startswith(predicted)
