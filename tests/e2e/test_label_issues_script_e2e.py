"""`labelloop label-issues` and its review tab in a real Label Studio; the tests without Label Studio are in tests/unit/test_label_issues_script.py."""

from __future__ import annotations

import json

import pytest
from helpers import CONFIG
from label_studio_sdk import LabelStudio
from labelstudio import needs_ls
from support.choices import result
from support.label_issues import reviews, script

from backend.labelstudio import review as label_review


@needs_ls
@pytest.mark.e2e
@pytest.mark.real_model
def test_review_tab_holds_the_flagged_tasks_and_a_confirmed_label_is_not_flagged_again(label_studio, tmp_path):
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    person = label_studio.create_annotator("reviewer@example.com", "review-pass-123")
    annotator = LabelStudio(base_url=label_studio.url, api_key=person.token)
    project = admin.projects.create(title="Label issues review", label_config=CONFIG).id
    texts, given, flipped = reviews(60, 6, seed=8)
    admin.projects.import_tasks(id=project, request=[{"text": t} for t in texts])
    ids = {t.data["text"]: t.id for t in admin.tasks.list(project=project, include="id,data")}
    annotation_of = {}
    for text, label in zip(texts, given):
        annotation_of[ids[text]] = annotator.annotations.create(id=ids[text], result=result(label)).id
    env = {
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.admin.token,
        "DATA_DIR": str(tmp_path / "data"),
    }

    def review(name):
        done = script(
            "--project", str(project), "--review", "--format", "json", "-q", "--out", str(tmp_path / name), env=env
        )
        assert done.returncode == 0, done.stderr
        return json.loads((tmp_path / name).read_text())

    def tab_tasks():
        tab = [v for v in admin.views.list(project=project) if v.data.get("title") == label_review.TITLE]
        assert len(tab) == 1
        return {t.id for t in admin.tasks.list(project=project, view=tab[0].id, include="id")}

    first = review("first.json")
    flagged = [i["task"] for i in first["issues"]]
    # The flags' quality is the export test's and the benchmark's business; here, that the flow carries them.
    assert len(flagged) >= 2 and set(flagged) & {ids[texts[i]] for i in flipped}, first["issues"]
    assert tab_tasks() == set(flagged)
    assert first["review"]["tasks"] == len(flagged) and first["review"]["confirmed"] == 0
    assert all(i["annotators"] == [str(person.id)] for i in first["issues"])

    # The reviewer saves the first flagged label again unchanged (confirms it) and changes the second.
    keep, change = first["issues"][0], first["issues"][1]
    annotator.annotations.update(id=annotation_of[keep["task"]], result=result(keep["given"]))
    annotator.annotations.update(id=annotation_of[change["task"]], result=result(change["suggested"]))

    second = review("second.json")
    again = {i["task"] for i in second["issues"]}
    assert keep["task"] not in again and second["counts"]["confirmed_not_flagged"] >= 1
    assert second["review"]["confirmed"] >= 1
    assert tab_tasks() == again
    # The relabeled task is judged again like any label: the model now agrees with its new label.
    assert change["task"] not in again

    # A third run forgets nothing: the confirmation stands while the label does.
    third = review("third.json")
    assert keep["task"] not in {i["task"] for i in third["issues"]}
