"""Finishing a dataset (backend/loop/finish.py) against a real Label Studio; the tests without Label Studio are in tests/unit/test_finish.py."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from helpers import CONFIG, tiny_predictor
from label_studio_sdk import LabelStudio
from labelstudio import needs_ls
from support.choices import result
from support.finish import N_HUMAN, N_TASKS, SCHEMA, TARGET, annotations_of, script, tab_of
from support.shapes import mismatches

from backend import corpus
from backend.cli import finish as finish_cli
from backend.labelstudio import audit, model_labels, tabs
from backend.labelstudio import tasks as ls_tasks
from backend.learning import classifier
from backend.loop import finish, finish_file, routing
from backend.quality import gold
from backend.settings import Settings


@needs_ls
@pytest.mark.e2e
def test_finish_plan_audit_test_apply_twice_and_undo(label_studio, tmp_path, monkeypatch, capsys):
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    person = label_studio.create_annotator("finisher@example.com", "finish-pass-123")
    annotator = LabelStudio(base_url=label_studio.url, api_key=person.token)
    project = admin.projects.create(title="Finish the dataset", label_config=CONFIG).id
    df = corpus.stratified_split(corpus.load(), [N_TASKS], seed=11)[0]
    gold_text = gold.default_gold().items[0].text
    admin.projects.import_tasks(
        id=project,
        request=[{"text": t} for t in df["text"]]
        + [{"text": gold_text}, {"text": "A made-up review.", "synthetic": True}],
    )
    truth = dict(zip(df["text"], df["label"]))
    tasks = {t.id: t.data["text"] for t in admin.tasks.list(project=project, include="id,data")}
    corpus_ids = sorted(i for i, text in tasks.items() if text in truth)
    gold_id = next(i for i, text in tasks.items() if text == gold_text)
    synthetic_id = next(i for i, text in tasks.items() if text == "A made-up review.")
    human_ids, open_ids = corpus_ids[:N_HUMAN], corpus_ids[N_HUMAN:]

    def label(ids, given=None):
        """People label these tasks: with `given` labels, else the corpus's."""
        given = given or {i: truth[tasks[i]] for i in ids}
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: annotator.annotations.create(id=i, result=result(given[i])), ids))

    label(human_ids)
    skipped_id = open_ids[0]  # a person skipped it: it has an annotation, and no label
    annotator.annotations.create(id=skipped_id, result=[], was_cancelled=True)
    annotator.annotations.create(id=gold_id, result=result("Positive"))
    people_before = {a["id"] for anns in annotations_of(admin, project).values() for a in anns}
    loop = finish.make_loop(Settings(data_dir=tmp_path / "data"), tiny_predictor)
    learner = loop.text.learner(loop.text.features())  # what the backend trains on these vectors

    def fitted(train, others):
        """The model build fits on `train` task ids: out-of-fold probabilities on them, probabilities on `others`."""

        def features(ids):
            texts = [tasks[i] for i in ids]
            return loop.text.vectors(SCHEMA, texts, loop.text.features()), loop.text.llm_probs(SCHEMA, texts)[0]

        (v, llm), y = features(train), np.array([SCHEMA.labels.index(truth[tasks[i]]) for i in train])
        model = classifier.fit(learner, v, llm, y, 3)
        return classifier.out_of_fold(learner, v, llm, y, 3), y, model.predict_proba(*features(others))

    # ---- dry run: the plan of an audit; nothing written.
    dataset = finish.build(admin, project, loop, target=TARGET)
    rows, a = {r["id"]: r for r in dataset["tasks"]}, dataset["audit"]
    assert len(rows) == len(dataset["tasks"]) == N_TASKS + 2 and set(rows) == set(tasks)
    assert {i: rows[i]["label"] for i in human_ids} == {i: truth[tasks[i]] for i in human_ids}
    assert all(rows[i]["source"] == "human" for i in human_ids)
    assert rows[gold_id]["source"] == "gold" and rows[synthetic_id]["source"] == "synthetic"
    assert rows[gold_id]["label"] is None and rows[synthetic_id]["label"] is None
    assert dataset["model"]["kind"] == learner and dataset["model"]["trained_on"] == N_HUMAN
    assert a["status"] == "drawn" and a["tab"] is None and a["size"] > 0, a
    drawn = a["plan"]["tasks"]
    assert a["pending"] == drawn and all(rows[i]["source"] == "audit" for i in drawn)
    assert dataset["counts"] == {
        "tasks": N_TASKS + 2,
        "human": N_HUMAN,
        "model": 0,
        "audit": len(drawn),
        "needs_person": len(open_ids) - len(drawn),
        "gold": 1,
        "synthetic": 1,
        "unreadable": 0,
    }
    oof, y, probs = fitted(human_ids, open_ids)  # the plan, recomputed
    plan = routing.plan_audit(oof.max(1), oof.argmax(1) == y, probs.max(1), TARGET, 0.95)
    assert (a["floor"], a["size"]) == (plan.region, plan.size)
    assert a["plan"]["region"] == [i for i, p in zip(open_ids, probs.max(1)) if p >= plan.region]
    assert sum(len(x) for x in annotations_of(admin, project).values()) == N_HUMAN + 2 and not tab_of(admin, project)

    # ---- --apply, as a user runs it: the plan is kept as a tab holding the audit's tasks; no label yet.
    out = tmp_path / "finished.json"
    for name, value in (
        ("LABEL_STUDIO_URL", label_studio.url),
        ("LABEL_STUDIO_API_KEY", label_studio.admin.token),
        ("DATA_DIR", str(tmp_path / "data")),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(finish_cli, "load_model", lambda settings: tiny_predictor())  # the command, on the tiny model
    assert (
        finish_cli.main(["--project", str(project), "--out", str(out), "--target", str(TARGET), "--apply", "-q"]) == 0
    )
    said = capsys.readouterr().out
    assert f"drew an audit of {len(drawn)} tasks" in said and "'Finish audit'" in said, said
    (tab,) = tab_of(admin, project)
    assert tabs.held(tab.data) == drawn and tab.data[audit.STATE_KEY]["tasks"] == drawn
    written = json.loads(out.read_text())
    assert written["audit"]["tab"] == tab.id and mismatches(written, finish_file.FinishFile) == []
    assert sum(len(x) for x in annotations_of(admin, project).values()) == N_HUMAN + 2

    # ---- people label the audit: nothing for the model until every task is done. They agree with the model's
    # guesses (the tiny random model is right about half the time: an audit of its own answers would pass or fail by
    # the draw, and the draw depends on the project's id); the test then passes, whatever the draw.
    agreed = {i: rows[i]["guess"] for i in drawn}
    half = drawn[: len(drawn) // 2]
    label(half, agreed)
    waiting = finish.build(admin, project, loop, target=TARGET)
    assert waiting["audit"]["status"] == "waiting" and waiting["audit"]["pending"] == drawn[len(half) :]
    assert waiting["counts"]["model"] == 0 and waiting["audit"]["tab"] == tab.id
    label(drawn[len(half) :], agreed)

    # ---- tested: the plan's model answers the audit; the region above the threshold that passed is the model's.
    dataset = finish.build(admin, project, loop, target=TARGET)
    rows, est = {r["id"]: r for r in dataset["tasks"]}, dataset["estimate"]
    assert dataset["audit"]["status"] == "tested" and dataset["model"]["trained_on"] == N_HUMAN
    _, _, answers = fitted(human_ids, drawn)
    y_audit = np.array([SCHEMA.labels.index(agreed[i]) for i in drawn])
    chosen = routing.audit_threshold(answers.max(1), answers.argmax(1) == y_audit, a["expected"], TARGET)
    assert est["threshold"] is not None and est["threshold"] == pytest.approx(chosen.threshold), (est, chosen)
    assert (est["support"], est["lower_bound"]) == (chosen.support, pytest.approx(chosen.lower_bound))
    assert est["lower_bound"] >= TARGET and est["rule"] == "audit" and est["bound"] == "exact"
    # The same audit under a prediction-powered bound (--bound ppi): the region's confidences, the audit's answers.
    ppi = finish.build(admin, project, loop, target=TARGET, bound="ppi")["estimate"]
    region_open = [i for i in a["plan"]["region"] if i not in drawn]
    _, _, both = fitted(human_ids, drawn + region_open)
    n = len(drawn)
    by_ppi = routing.ppi_audit_threshold(
        both.max(1), both[:n].max(1), both[:n].argmax(1) == y_audit, a["expected"], TARGET
    )
    assert ppi["bound"] == "ppi" and (ppi["threshold"] is None) == (by_ppi.threshold is None), (ppi, by_ppi)
    if by_ppi.threshold is not None:
        assert (ppi["threshold"], ppi["support"]) == (pytest.approx(by_ppi.threshold), by_ppi.support)
        assert ppi["lower_bound"] == pytest.approx(by_ppi.lower_bound)
    model_rows = [r for r in dataset["tasks"] if r["source"] == "model"]
    waiting = [r for r in dataset["tasks"] if r["source"] == "needs_person"]
    region = set(dataset["audit"]["plan"]["region"]) - set(drawn)
    assert model_rows and {r["id"] for r in model_rows} <= region
    assert {r["id"] for r in model_rows + waiting} == set(open_ids) - set(drawn)
    assert all(r["probability"] >= est["threshold"] - 1e-6 and r["label"] in SCHEMA.labels for r in model_rows)
    assert all(r["label"] is None for r in waiting)
    assert all(r["probability"] < est["threshold"] for r in waiting if r["id"] in region)
    assert dataset["needs_person"] == [r["id"] for r in sorted(waiting, key=lambda r: (r["probability"], r["id"]))]
    assert est["model_labeled"] == len(model_rows) == dataset["counts"]["model"]

    # ---- --apply: only unannotated confident tasks get a model annotation.
    record = finish.apply(admin, project, dataset)
    expected = {r["id"] for r in model_rows} - {skipped_id}
    assert {c["task"] for c in record["created"]} == expected and not record["removed"] and not record["failed"]
    assert record["skipped"] == ([skipped_id] if rows[skipped_id]["source"] == "model" else [])
    held = annotations_of(admin, project)
    for task_id, anns in held.items():
        ours = [x for x in anns if model_labels.is_model_annotation(x)]
        if task_id in expected:
            assert len(anns) == 1 and len(ours) == 1
            assert all(item["meta"] == {"labelloop": model_labels.MARK_TEXT} for item in ours[0]["result"])
            assert ls_tasks.annotation_label(ours[0], SCHEMA) == rows[task_id]["label"]
            assert rows[task_id]["annotation"] == ours[0]["id"]
        else:
            assert not ours, task_id
    assert people_before <= {x["id"] for anns in held.values() for x in anns}

    # ---- again: nothing new.
    again = finish.apply(admin, project, dataset)
    assert not again["created"] and not again["removed"]
    assert {k["task"] for k in again["kept"]} == expected

    # ---- training's reader and finish itself: the model's labels are not human labels.
    labeled, stats = ls_tasks.fetch_labeled(admin, project, SCHEMA, gold_set=gold.default_gold())
    assert {t.task_id for t in labeled} == set(human_ids) | set(drawn) and stats.model == len(expected)
    rebuilt = finish.build(admin, project, loop, target=TARGET)
    assert rebuilt["counts"]["human"] == N_HUMAN + len(drawn) and rebuilt["estimate"] == dataset["estimate"]

    # ---- a person corrects one model label, and annotates beside another.
    created = sorted(record["created"], key=lambda c: c["task"])
    corrected = created[0]
    time.sleep(max(0.0, model_labels.EDIT_SLACK.total_seconds() + 0.2))
    other = next(x for x in SCHEMA.labels if x != corrected["label"])
    # As the editor saves it: the region keeps its meta, so the mark stays and the label is the person's now.
    annotator.annotations.update(id=corrected["annotation"], result=model_labels.mark_result(result(other)))
    labeled, stats = ls_tasks.fetch_labeled(admin, project, SCHEMA, gold_set=gold.default_gold())
    assert {t.task_id: t.label for t in labeled}[corrected["task"]] == other  # a person's label now
    assert len(created) >= 2, record
    beside = created[1]
    annotator.annotations.create(id=beside["task"], result=result(rows[beside["task"]]["label"]))
    tidy = finish.apply(admin, project, dataset)  # the same model labels: only what changed in Label Studio
    assert [(r["task"], r["reason"]) for r in tidy["removed"]] == [(beside["task"], "a person annotated the task")]
    assert not tidy["created"] and {corrected["task"], beside["task"]} <= set(tidy["skipped"])

    # ---- --undo, as a user runs it: exactly the model's annotations go, and the audit's tab; the people's stay.
    ours_now = {
        x["id"] for anns in annotations_of(admin, project).values() for x in anns if model_labels.is_model_annotation(x)
    }
    undo_file = tmp_path / "undo.json"
    done = script(
        "--project",
        str(project),
        "--undo",
        "--out",
        str(undo_file),
        "-q",
        url=label_studio.url,
        api_key=label_studio.admin.token,
    )
    assert done.returncode == 0, done.stderr
    assert f"removed {len(ours_now)} model annotations" in done.stdout and "kept 1 a person has saved" in done.stdout
    assert "removed the audit tab" in done.stdout and not tab_of(admin, project)
    undone = json.loads(undo_file.read_text())["undo"]
    assert mismatches(undone, finish_file.UndoRecord) == []
    assert {r["annotation"] for r in undone["removed"]} == ours_now
    assert undone["kept_edited"] == [{"task": corrected["task"], "annotation": corrected["annotation"]}]
    after = annotations_of(admin, project)
    remaining = {x["id"] for anns in after.values() for x in anns}
    audit_labels = {x["id"] for i in drawn for x in after[i]}
    assert remaining == people_before | audit_labels | {corrected["annotation"]} | {
        x["id"] for x in after[beside["task"]]
    }
    assert not any(model_labels.is_model_annotation(x) for anns in after.values() for x in anns)


@needs_ls
@pytest.mark.e2e
def test_the_script_says_what_is_wrong_in_one_line(label_studio, tmp_path):
    env = dict(url=label_studio.url, api_key=label_studio.admin.token)
    cases = [
        (["--project", "99999", "--out", str(tmp_path / "x.json")], "has no project 99999"),
        (["--project", "1", "--out", str(tmp_path / "x.json"), "--target", "1.5"], "strictly between 0 and 1"),
        (["--project", "1"], "--out FILE is required"),
        (["--project", "1", "--undo", "--apply"], "not allowed with"),
    ]
    for args, says in cases:
        done = script(*args, **env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (
            args,
            done.stderr,
        )
    assert not (tmp_path / "x.json").exists()
    done = script("--project", "1", "--undo", url=label_studio.url, api_key="not-a-token")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "rejected" in lines[0]
