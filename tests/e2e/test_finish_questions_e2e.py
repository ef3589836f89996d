"""Finishing and label issues per question against a real Label Studio, on the three questions of the review-facets
config (sentiment; aspects, multi-label; spoiler) and its 240 sample reviews.

The tiny random model cannot be sure of a multi-label set (its per-label regressions stay at 0.5), so it reads the
project once, for the real scoring of three questions, and judges the labels (label issues); the finishing rounds
use vectors that carry each question's answer (test_finish_questions.FacetFeatures), so that a region, an audit and
a passing threshold exist for the multi-label question as for the others. Label Studio, the audit tab, the
annotations and the commands are real."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import ROOT, tiny_predictor
from label_studio_sdk import LabelStudio
from labelstudio import needs_ls
from support.facets import ASPECTS, CONFIG, FACETS, SENTIMENT, SPOILER, FacetFeatures
from support.finish import (
    SignalLoop,
    annotations_of,
    tab_of,
)

from backend.cli import finish as finish_cli
from backend.cli import label_issues as label_issues_cli
from backend.labelstudio import audit, model_labels, tabs
from backend.labelstudio import review as label_review
from backend.labelstudio import tasks as ls_tasks
from backend.loop import finish
from backend.quality import gold
from backend.settings import Settings

GUIDELINES = ROOT / "guidelines" / "review_facets.md"
SAMPLE = [
    json.loads(line) for line in (ROOT / "guidelines" / "samples" / "review_facets.jsonl").read_text().splitlines()
]
N_HUMAN = 100
TARGET = 0.7


def results(answers: dict) -> list[dict]:
    """A person's annotation of the three questions: {"sentiment": label, "aspects": [labels], "spoiler": label}."""
    return [
        SENTIMENT.result(answers["sentiment"]),
        ASPECTS.result(*answers["aspects"]),
        SPOILER.result(answers["spoiler"]),
    ]


def tiny():
    return tiny_predictor(guidelines_path=GUIDELINES)


@needs_ls
@pytest.mark.e2e
def test_three_questions_are_finished_each_on_its_own_and_judged_per_question(
    label_studio, tmp_path, monkeypatch, capsys
):
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    person = label_studio.create_annotator("facets@example.com", "facets-pass-123")
    annotator = LabelStudio(base_url=label_studio.url, api_key=person.token)
    project = admin.projects.create(title="Finish three questions", label_config=FACETS).id
    admin.projects.import_tasks(id=project, request=[{"text": item["text"]} for item in SAMPLE])
    tasks = {t.id: t.data["text"] for t in admin.tasks.list(project=project, include="id,data")}
    by_text = {item["text"]: item for item in SAMPLE}
    human_ids, open_ids = sorted(tasks)[:N_HUMAN], sorted(tasks)[N_HUMAN:]

    def label(ids, answers):
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: annotator.annotations.create(id=i, result=results(answers(i))), ids))

    label(human_ids, lambda i: by_text[tasks[i]])
    people_before = {a["id"] for anns in annotations_of(admin, project).values() for a in anns}
    for name, value in (
        ("LABEL_STUDIO_URL", label_studio.url),
        ("LABEL_STUDIO_API_KEY", label_studio.admin.token),
        ("DATA_DIR", str(tmp_path / "data")),
    ):
        monkeypatch.setenv(name, value)

    # ---- the tiny model reads every question of the project: a model per question, fitted on its answers.
    read = finish.build(admin, project, finish.make_loop(Settings(data_dir=tmp_path / "data"), tiny), target=TARGET)
    assert list(read["questions"]) == ["sentiment", "aspects", "spoiler"] and read["questions"]["aspects"]["multiple"]
    for q in read["questions"].values():
        assert q["model"]["trained_on"] == N_HUMAN and q["model"]["kind"] == "state_blend", q["model"]
        assert q["counts"]["human"] == N_HUMAN
    assert read["counts"]["human"] == N_HUMAN and read["labels"] == list(SENTIMENT.labels)

    # ---- the finishing rounds, on vectors that carry each question's answer.
    truth = {
        item["text"]: {
            "sentiment": SENTIMENT.labels.index(item["sentiment"]),
            "aspects": tuple(int(label in item["aspects"]) for label in ASPECTS.labels),
            "spoiler": SPOILER.labels.index(item["spoiler"]),
        }
        for item in SAMPLE
    }
    loop = SignalLoop({}, 0)
    loop.text = FacetFeatures(truth, 0)
    make_loop = finish.make_loop
    monkeypatch.setattr(finish, "make_loop", lambda settings, predictor: loop)

    dry = finish.build(admin, project, loop, target=TARGET)
    plan = dry["audit"]["plan"]
    assert dry["audit"]["status"] == "drawn" and set(plan["questions"]) == {"sentiment", "aspects", "spoiler"}
    samples = {name: p["tasks"] for name, p in plan["questions"].items()}
    assert all(samples.values()) and plan["tasks"] == sorted(set().union(*samples.values())), samples
    assert not tab_of(admin, project) and sum(len(x) for x in annotations_of(admin, project).values()) == N_HUMAN

    # ---- --apply keeps the plan: the tab holds every question's sample, in format 2.
    out = tmp_path / "finished.json"
    command = ["--project", str(project), "--out", str(out), "--target", str(TARGET), "--apply", "-q"]
    assert finish_cli.main(command) == 0
    said = capsys.readouterr().out
    assert f"drew an audit of {len(plan['tasks'])} tasks" in said and "on every question" in said, said
    assert all(f"  {name}" in said for name in samples), said
    (tab,) = tab_of(admin, project)
    state = tab.data[audit.STATE_KEY]
    assert state["format"] == 2 and state["tasks"] == plan["tasks"] and state["questions"] == plan["questions"]

    # ---- people label the audit on every question: sentiment and aspects as the model guessed, spoiler against
    # it, so the first two pass their tests and spoiler fails its own.
    rows = {r["id"]: r for r in dry["tasks"]}

    def audit_answers(i):
        q = rows[i]["questions"]
        spoiler = next(label for label in SPOILER.labels if label != q["spoiler"]["guess"])
        aspects = list(ASPECTS.members(q["aspects"]["guess"]))
        return {"sentiment": q["sentiment"]["guess"], "aspects": aspects, "spoiler": spoiler}

    label(plan["tasks"], audit_answers)
    assert finish_cli.main(command) == 0
    said = capsys.readouterr().out
    dataset = json.loads(out.read_text())
    qs, rows = dataset["questions"], {r["id"]: r for r in dataset["tasks"]}
    assert dataset["audit"]["status"] == "tested" and {q["audit"]["status"] for q in qs.values()} == {"tested"}
    assert qs["sentiment"]["estimate"]["threshold"] is not None and qs["aspects"]["estimate"]["threshold"] is not None
    assert qs["spoiler"]["estimate"]["threshold"] is None and qs["spoiler"]["counts"]["model"] == 0
    for name, q in qs.items():
        line = f"  {name}{' (multi-label: every label sure)' if q['multiple'] else ''}: {q['counts']['model']} labeled"
        assert line in said, said
    assert "spoiler: 0 labeled by the model (its audit's most confident answers already fail the target)" in said
    assert dataset["estimate"] == qs["sentiment"]["estimate"]

    # In Label Studio: each task's model annotation holds exactly the questions that cleared there, never spoiler.
    record = dataset["apply"]
    held = annotations_of(admin, project)
    made = {}
    for task_id, anns in held.items():
        ours = [a for a in anns if model_labels.is_model_annotation(a)]
        cleared = finish.wanted(rows[task_id], "sentiment")
        if not cleared:
            assert not ours, task_id
            continue
        assert task_id in open_ids and len(anns) == 1 and len(ours) == 1
        assert all(item["meta"] == {"labelloop": model_labels.MARK_TEXT} for item in ours[0]["result"])
        names = [r["from_name"] for r in ours[0]["result"]]
        assert names == [q.from_name for q in CONFIG.questions if q.from_name in cleared] and "spoiler" not in names
        assert finish.held_answers(ours[0], CONFIG.questions) == cleared
        assert rows[task_id]["annotation"] == ours[0]["id"]
        made[task_id] = cleared
    assert made and {c["task"] for c in record["created"]} == set(made) and not record["failed"]
    assert any(set(c) == {"sentiment"} for c in made.values()) and any("aspects" in c for c in made.values())
    assert any(c.get("aspects") == "" for c in made.values())  # none applies: an empty choice Label Studio keeps
    assert all(rows[i]["source"] == "needs_person" for i in made)  # spoiler still needs a person everywhere
    assert people_before <= {a["id"] for anns in held.values() for a in anns}

    # Training's reader: the model's annotations are no human labels; again, nothing new is written.
    labeled, stats = ls_tasks.fetch_labeled(admin, project, CONFIG, gold_set=gold.default_gold())
    assert {t.task_id for t in labeled} == set(human_ids) | set(plan["tasks"]) and stats.model == len(made)
    again = finish.apply(admin, project, dataset)
    assert not again["created"] and not again["removed"] and {k["task"] for k in again["kept"]} == set(made)

    # ---- label issues, every question judged by the tiny model, and the review tab over all of them.
    monkeypatch.setattr(label_issues_cli, "load_model", lambda settings: tiny())
    monkeypatch.setattr(finish, "make_loop", make_loop)  # the backend's loop again, on the tiny model
    issues_file = tmp_path / "issues.json"
    assert (
        label_issues_cli.main(
            ["--project", str(project), "--review", "--format", "json", "--out", str(issues_file), "-q"]
        )
        == 0
    )
    report = json.loads(issues_file.read_text())
    assert (
        list(report["questions"]) == ["sentiment", "aspects", "spoiler"] and report["questions"]["aspects"]["multiple"]
    )
    n_labeled = N_HUMAN + len(plan["tasks"])
    for name, q in report["questions"].items():
        assert q["counts"]["tasks"] == n_labeled and q["model"]["kind"] == "state_blend", (name, q)
    assert report["counts"]["tasks"] == 3 * n_labeled and report["questions"]["aspects"]["consensus"] is None
    for issue in report["issues"]:
        assert issue["question"] in report["questions"]
        if issue["question"] == "aspects":
            assert isinstance(issue["given"], list) and set(issue["given"]) <= set(ASPECTS.labels)
    flagged = {i["task"] for i in report["issues"]}
    (issues_tab,) = [v for v in admin.views.list(project=project) if v.data.get("title") == label_review.TITLE]
    assert set(tabs.held(issues_tab.data)) == flagged
    assert set(issues_tab.data[label_review.STATE_KEY]["questions"]) == {"sentiment", "aspects", "spoiler"}
    assert report["review"]["tasks"] == len(flagged)

    # ---- --undo: every model annotation goes, and the audit's tab; the people's labels stay.
    assert finish_cli.main(["--project", str(project), "--undo", "-q"]) == 0
    said = capsys.readouterr().out
    assert f"removed {len(made)} model annotations" in said and "removed the audit tab" in said, said
    after = annotations_of(admin, project)
    assert not any(model_labels.is_model_annotation(a) for anns in after.values() for a in anns)
    assert {a["id"] for anns in after.values() for a in anns} >= people_before and not tab_of(admin, project)
