"""`labelloop label-issues` on an export with the packaged model; the tests without the packaged model are in tests/unit/test_label_issues_script.py."""

from __future__ import annotations

import csv
import io
import json

import pytest
from support.choices import result
from support.label_issues import CONFIG_PATH, LABELS, reviews, script


@pytest.mark.real_model
def test_export_json_contract_finds_planted_flips(tmp_path):
    texts, given, flipped = reviews(60, 6, seed=5)
    tasks = [
        {
            "id": 700 + i,
            "data": {"text": t},
            "annotations": [{"id": 9000 + i, "completed_by": 1 + i % 2, "result": result(label)}],
        }
        for i, (t, label) in enumerate(zip(texts, given))
    ]
    for i in range(10):  # a third annotator agrees on the first ten: CROWDLAB and κ/α join the report
        tasks[i]["annotations"].append({"id": 9500 + i, "completed_by": 3, "result": result(given[i])})
    tasks.append(
        {
            "id": 800,
            "data": {"text": "A made-up review.", "synthetic": True},
            "annotations": [{"id": 9900, "completed_by": 1, "result": result("Neutral")}],
        }
    )
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    done = script(
        str(export), "--config", str(CONFIG_PATH), "--format", "json", "-q", env={"DATA_DIR": str(tmp_path / "data")}
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # one JSON object on stdout
    issues = report["issues"]
    flagged = {i["task"] for i in issues}
    planted = {700 + i for i in flipped}
    assert len(flagged & planted) >= 3, (flagged, planted)  # measured: 4 of 6 with 11 flagged
    assert flagged <= {t["id"] for t in tasks[:-1]}  # the synthetic task is never judged
    for issue in issues:
        assert set(issue) >= {"task", "text", "given", "suggested", "quality", "annotators", "reason"}
        assert issue["given"] == given[issue["task"] - 700] and issue["suggested"] in LABELS
        row = issue["task"] - 700
        assert issue["annotators"] == sorted({str(1 + row % 2)} | ({"3"} if row < 10 else set()))
    assert [i["quality"] for i in issues] == sorted(i["quality"] for i in issues)
    assert report["counts"]["tasks"] == 60 and report["model"]["kind"] == "state_blend"
    assert report["model"]["features"] == "llm-layer-15"
    assert sum(a["flagged"] for a in report["annotators"]) == sum(len(i["annotators"]) for i in issues)
    crowd = report["consensus"]
    assert (
        crowd["method"] == "crowdlab"
        and len(crowd["tasks"]) == 60
        and set(crowd["annotator_quality"]) == {"1", "2", "3"}
    )
    assert report["agreement"]["krippendorff_alpha"] == pytest.approx(1.0)  # the third annotator always agreed

    # CSV and the table from the same run (the model's features are cached in DATA_DIR now)
    done = script(
        str(export),
        "--config",
        str(CONFIG_PATH),
        "--format",
        "csv",
        "-q",
        "--out",
        str(tmp_path / "i.csv"),
        env={"DATA_DIR": str(tmp_path / "data")},
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO((tmp_path / "i.csv").read_text())))
    assert [int(r["task"]) for r in rows] == [i["task"] for i in issues]
    done = script(str(export), "--config", str(CONFIG_PATH), "-q", env={"DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0 and f"{len(issues)} likely wrong labels among 60" in done.stdout
