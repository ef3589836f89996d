"""Annotator drift on gold (backend/quality/drift.py) and the drift subcommand of labelloop gold.

The main fixture is a synthetic Label Studio JSON export built here: 30 gold tasks answered by annotator 1 (accurate:
one error, on the 13th answer) and annotator 2 (drifting: 10/10 correct, then 8/10, then 4/10), listed in the export
in reverse time order, plus noise that must be ignored: a cancelled wrong answer, a synthetic task holding a gold
text, an older wrong annotation replaced by a newer right one, non-gold tasks, a prediction, and annotator 3 who
answered only non-gold tasks.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import warm
from matplotlib import image

from backend.quality import drift, gold
from backend.quality.drift import GoldAnswer
from backend.quality.gold import GoldError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = warm.labelloop("gold")
LABELS = ["Positive", "Negative", "Neutral"]
START = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def wrong(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % 3]


def annotation(annotator, label: str, minute: int, cancelled: bool = False, updated: int | None = None) -> dict:
    created = START + timedelta(minutes=minute)
    return {
        "completed_by": annotator,
        "result": [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}],
        "was_cancelled": cancelled,
        "created_at": created.isoformat().replace("+00:00", "Z"),
        "updated_at": (START + timedelta(minutes=updated if updated is not None else minute)).isoformat(),
        "lead_time": 12.5,
    }


def gold_file(tmp_path: Path, n: int = 30) -> gold.GoldSet:
    rows = [{"text": f"Gold review {i}: a line only the gold file knows.", "label": LABELS[i % 3]} for i in range(n)]
    path = tmp_path / "gold.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return gold.load_gold(path)


def drifting_export(tmp_path: Path, g: gold.GoldSet, annotators=(1, 2)) -> Path:
    """The fixture described in the module docstring; returns the export path."""
    good_errors = {12}
    drift_errors = {12, 17} | {20, 22, 23, 25, 27, 29}  # 2 errors in answers 11-20, 6 in 21-30
    tasks = []
    for i, item in enumerate(g.items):
        annotations = []
        if 1 in annotators:
            annotations.append(annotation(1, wrong(item.label) if i in good_errors else item.label, minute=2 * i))
        if 2 in annotators:
            annotations.append(
                annotation(
                    {"id": 2, "email": "b@example.org"},
                    wrong(item.label) if i in drift_errors else item.label,
                    minute=2 * i + 1,
                )
            )
        tasks.append(
            {
                "id": 100 + i,
                "data": {"text": item.text},
                "annotations": annotations,
                "predictions": [{"result": [], "score": 0.5}] if i == 0 else [],
            }
        )
    if 1 in annotators:
        # Noise that would change annotator 1's numbers if it were counted.
        tasks[3]["annotations"].append(annotation(1, wrong(g.items[3].label), minute=200, cancelled=True))
        tasks[5]["annotations"].insert(0, annotation(1, wrong(g.items[5].label), minute=1, updated=3))
        tasks[5]["annotations"][1]["updated_at"] = (START + timedelta(minutes=90)).isoformat()
        tasks.append(
            {
                "id": 900,
                "data": {"text": g.items[0].text, "synthetic": True},
                "annotations": [annotation(1, wrong(g.items[0].label), minute=300)],
            }
        )
    tasks.append(
        {
            "id": 901,
            "data": {"text": "An ordinary review, not gold."},
            "annotations": [annotation(a, "Negative", minute=5) for a in (*annotators, 3)],
        }
    )
    tasks.reverse()  # export order is not time order
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def by_annotator(report: dict) -> dict[str, dict]:
    return {row["annotator"]: row for row in report["annotators"]}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return warm.run([*SCRIPT, *args], timeout=60)


def answers(pairs: list[tuple[str, str]]) -> list[GoldAnswer]:
    return [GoldAnswer(task_id=i, created_at=None, gold=g, label=given) for i, (g, given) in enumerate(pairs)]


# ---------------------------------------------------------------------------------------------------------------
# The drifting fixture


def test_drifting_annotator_is_flagged_and_the_accurate_one_is_not(tmp_path):
    g = gold_file(tmp_path)
    report = drift.drift_report(drifting_export(tmp_path, g), g)
    rows = by_annotator(report)
    assert report["flagged"] == ["2"]

    good = rows["1"]
    assert (good["n_gold"], good["n_correct"]) == (30, 29)
    assert good["accuracy"] == pytest.approx(29 / 30)
    assert good["first_window"] == 1.0 and good["latest_window"] == 1.0
    assert not good["flagged"] and good["reasons"] == []

    bad = rows["2"]
    assert (bad["n_gold"], bad["n_correct"]) == (30, 22)
    assert bad["accuracy"] == pytest.approx(22 / 30)
    # Only true if answers are in created_at order: the export lists them newest first.
    assert bad["first_window"] == 1.0 and bad["latest_window"] == pytest.approx(0.4)
    assert [round(w, 9) for w in bad["windows"][::10]] == [1.0, 0.8, 0.4]
    assert len(bad["windows"]) == 21
    assert bad["flagged"]
    assert [reason.split()[0] for reason in bad["reasons"]] == ["overall", "latest", "falling:"]
    times = [a["created_at"] for a in bad["answers"]]
    assert times == sorted(times)


def test_noise_is_ignored_and_counted(tmp_path):
    g = gold_file(tmp_path)
    report = drift.drift_report(drifting_export(tmp_path, g), g)
    counts = report["counts"]
    assert counts["tasks_in_export"] == 32
    assert counts["synthetic_tasks_excluded"] == 1
    assert counts["cancelled_annotations"] == 1
    assert counts["duplicate_annotations"] == 1
    assert counts["gold_tasks"] == 30
    assert counts["gold_answers_used"] == 60

    rows = by_annotator(report)
    # Task 105: the older wrong annotation was replaced by the newer right one.
    answer = next(a for a in rows["1"]["answers"] if a["task_id"] == 105)
    assert answer["correct"]
    # Annotator 3 answered no gold: listed, with a note, not flagged.
    assert rows["3"]["n_gold"] == 0 and rows["3"]["accuracy"] is None and not rows["3"]["flagged"]
    assert any("no gold answers" in note for note in rows["3"]["notes"])
    assert list(rows) == ["1", "2", "3"]


def test_error_confusion_counts(tmp_path):
    g = gold_file(tmp_path)
    rows = by_annotator(drift.drift_report(drifting_export(tmp_path, g), g))
    # Gold label of item i is LABELS[i % 3]; wrong() shifts it by one. Annotator 1 erred on item 12 (Positive).
    assert rows["1"]["errors"] == {"Positive": {"Negative": 1}}
    # Annotator 2 erred on items 12, 17, 20, 22, 23, 25, 27, 29: i % 3 = 0, 2, 2, 1, 2, 1, 0, 2.
    assert rows["2"]["errors"] == {"Positive": {"Negative": 2}, "Negative": {"Neutral": 2}, "Neutral": {"Positive": 4}}


# ---------------------------------------------------------------------------------------------------------------
# The statistics, by hand


def test_accuracy_and_kappa_match_hand_computed_values():
    # Gold P P P P N N N N U U; answers P P P N N N N P U U.
    # p_o = 8/10; marginals gold (4, 4, 2), answers (4, 4, 2): p_e = (16 + 16 + 4) / 100 = 0.36;
    # κ = (0.8 - 0.36) / (1 - 0.36) = 0.6875.
    pairs = (
        [("Positive", "Positive")] * 3
        + [("Positive", "Negative")]
        + [("Negative", "Negative")] * 3
        + [("Negative", "Positive")]
        + [("Neutral", "Neutral")] * 2
    )
    summary = drift.assess(answers(pairs), window=5, threshold=0.7)
    assert summary["accuracy"] == pytest.approx(0.8)
    assert summary["kappa"] == pytest.approx(0.6875)
    assert summary["kappa_band"] == "substantial"
    assert summary["errors"] == {"Negative": {"Positive": 1}, "Positive": {"Negative": 1}}
    # Windows of 5 over correct = 1 1 1 0 1 1 1 0 1 1.
    assert summary["windows"] == pytest.approx([0.8, 0.8, 0.8, 0.6, 0.8, 0.8])
    assert not summary["flagged"]


def test_window_accuracies():
    assert drift.window_accuracies([1, 1, 0, 0], 2) == [1.0, 0.5, 0.0]
    assert drift.window_accuracies([1, 0], 3) == []


def test_falling_alone_flags():
    # First 10 all right, last 10 with 2 errors: overall 0.9 and latest 0.8 are not below 0.8, but 1.0 -> 0.8 falls.
    correct = [("Positive", "Positive")] * 10 + [("Positive", "Positive")] * 8 + [("Positive", "Negative")] * 2
    summary = drift.assess(answers(correct), window=10, threshold=0.8, drop=0.15)
    assert summary["latest_window"] == pytest.approx(0.8) and summary["accuracy"] == pytest.approx(0.9)
    assert summary["flagged"] and len(summary["reasons"]) == 1 and summary["reasons"][0].startswith("falling")
    # With a larger allowed drop it is not falling.
    assert not drift.assess(answers(correct), window=10, threshold=0.8, drop=0.25)["flagged"]
    # Falling is not judged before 2 full windows of answers (19 here): overlapping windows would exaggerate it.
    short = drift.assess(answers(correct[1:]), window=10, threshold=0.8, drop=0.15)
    assert not short["flagged"] and any("falling is judged from 20" in note for note in short["notes"])


def test_latest_window_alone_flags():
    # 30 answers, 25 right overall (0.833 >= 0.8), but 3 errors in the last 10 (0.7) after 2 in the first 10 (0.8).
    pairs = [("Neutral", "Neutral")] * 30
    for i in (0, 1, 25, 27, 29):
        pairs[i] = ("Neutral", "Positive")
    summary = drift.assess(answers(pairs), window=10, threshold=0.8, drop=0.15)
    assert summary["accuracy"] == pytest.approx(25 / 30)
    assert [r.split()[0] for r in summary["reasons"]] == ["latest"]


def test_undefined_kappa_is_null_with_a_note():
    summary = drift.assess(answers([("Positive", "Positive")] * 4), window=2)
    assert summary["kappa"] is None and summary["accuracy"] == 1.0
    assert any("κ is null" in note for note in summary["notes"])
    one = drift.assess(answers([("Positive", "Negative")]), window=2)
    assert one["kappa"] is None and any("fewer than 2" in note for note in one["notes"])
    assert one["flagged"]  # 0 of 1 is still below the threshold


def test_bad_parameters_and_inputs(tmp_path):
    g = gold_file(tmp_path)
    export = drifting_export(tmp_path, g)
    with pytest.raises(GoldError, match="window"):
        drift.drift_report(export, g, window=0)
    with pytest.raises(GoldError, match="threshold"):
        drift.drift_report(export, g, threshold=80)
    (tmp_path / "min.json").write_text(json.dumps([{"id": 1, "sentiment": "Positive", "annotator": 1}]))
    with pytest.raises(GoldError, match="JSON-MIN"):
        drift.drift_report(tmp_path / "min.json", g)
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(GoldError, match="not valid JSON"):
        drift.drift_report(tmp_path / "broken.json", g)


def test_export_without_gold_says_so(tmp_path):
    g = gold_file(tmp_path)
    path = tmp_path / "plain.json"
    path.write_text(json.dumps([{"id": 1, "data": {"text": "plain"}, "annotations": [annotation(1, "Positive", 0)]}]))
    report = drift.drift_report(path, g)
    assert report["flagged"] == [] and report["counts"]["gold_tasks"] == 0
    assert any("no gold task found" in note for note in report["notes"])


def test_table_is_readable(tmp_path):
    g = gold_file(tmp_path)
    table = drift.format_table(drift.drift_report(drifting_export(tmp_path, g), g))
    lines = table.splitlines()
    row = next(line for line in lines if line.strip().startswith("2 "))
    assert "0.733" in row and "FLAGGED" in row
    assert "no gold" in next(line for line in lines if line.strip().startswith("3 "))
    assert "Neutral -> Positive x4" in table


# ---------------------------------------------------------------------------------------------------------------
# The plot


def test_plot_writes_a_valid_png(tmp_path):
    g = gold_file(tmp_path)
    report = drift.drift_report(drifting_export(tmp_path, g), g)
    path = drift.plot_drift(report, tmp_path / "drift.png")
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000  # a drawn chart, not an empty canvas
    pixels = image.imread(path)
    assert pixels.shape[:2] == (500, 900)
    assert pixels[..., :3].std() > 0.05  # lines and text, not one flat colour


def test_plot_of_an_export_without_gold_still_writes(tmp_path):
    g = gold_file(tmp_path)
    path = tmp_path / "plain.json"
    path.write_text(json.dumps([]))
    out = drift.plot_drift(drift.drift_report(path, g), tmp_path / "empty.png")
    assert out.read_bytes()[:8] == PNG_SIGNATURE


# ---------------------------------------------------------------------------------------------------------------
# CLI: drift


def test_cli_json_exits_1_with_a_flagged_annotator(tmp_path):
    g = gold_file(tmp_path)
    export = drifting_export(tmp_path, g)
    plot = tmp_path / "out.png"
    result = run_cli("drift", str(export), "--gold", g.source, "--format", "json", "--plot", str(plot))
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["flagged"] == ["2"]
    assert "1 annotator(s) flagged: 2" in result.stderr
    assert plot.read_bytes()[:8] == PNG_SIGNATURE


def test_cli_exits_0_when_nobody_is_flagged(tmp_path):
    g = gold_file(tmp_path)
    export = drifting_export(tmp_path, g, annotators=(1,))
    result = run_cli("drift", str(export), "--gold", g.source)
    assert result.returncode == 0, result.stderr
    assert "FLAGGED" not in result.stdout and "annotator" in result.stdout


def test_cli_missing_file_is_one_error_line(tmp_path):
    result = run_cli("drift", str(tmp_path / "missing.json"))
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and "missing.json" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


# ---------------------------------------------------------------------------------------------------------------
# Label issues joined


def issues_file(tmp_path: Path) -> Path:
    """What labelloop label-issues --format json writes, reduced to what drift reads."""
    report = {
        "issues": [{"task": 1}, {"task": 2}, {"task": 3}],
        "annotators": [
            {"annotator": "2", "labels": 40, "flagged": 3, "rate": 0.075},
            {"annotator": "1", "labels": 40, "flagged": 0, "rate": 0.0},
            {"annotator": "9", "labels": 5, "flagged": 0, "rate": 0.0},
        ],
    }
    path = tmp_path / "issues.json"
    path.write_text(json.dumps(report))
    return path


def test_label_issues_join_the_table_json_and_plot(tmp_path):
    g = gold_file(tmp_path)
    export = drifting_export(tmp_path, g)
    plot = tmp_path / "joined.png"
    result = run_cli(
        "drift",
        str(export),
        "--gold",
        g.source,
        "--format",
        "json",
        "--plot",
        str(plot),
        "--label-issues",
        str(issues_file(tmp_path)),
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    rows = {row["annotator"]: row for row in report["annotators"]}
    assert rows["2"]["label_issues"] == {"labels": 40, "flagged": 3, "rate": 0.075}
    assert rows["3"]["label_issues"] is None  # judged by nobody: no labels in the issues report
    assert rows["9"]["n_gold"] == 0 and rows["9"]["label_issues"]["labels"] == 5 and not rows["9"]["flagged"]
    assert report["label_issues"]["flagged_tasks"] == 3 and report["flagged"] == ["2"]
    assert image.imread(plot).shape[:2] == (850, 900)  # the second panel
    table = run_cli("drift", str(export), "--gold", g.source, "--label-issues", str(issues_file(tmp_path))).stdout
    row = next(line for line in table.splitlines() if line.strip().startswith("2 "))
    assert "FLAGGED" in row and "3 of 40 (7.5%)" in row


def test_label_issues_file_errors_are_one_line(tmp_path):
    g = gold_file(tmp_path)
    export = drifting_export(tmp_path, g)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"issues": []}))
    for path, says in ((tmp_path / "none.json", "cannot read"), (bad, "no annotators list")):
        result = run_cli("drift", str(export), "--gold", g.source, "--label-issues", str(path))
        assert result.returncode == 2 and says in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_multi_label_question_is_judged_on_the_whole_set(tmp_path):
    # Gold for the facets config's aspects: lists of labels, the empty list a valid answer.
    items = [
        {"text": f"gold review {i}", "label": labels}
        for i, labels in enumerate([["Acting"], [], ["Story", "Music"], ["Visuals"]] * 3)
    ]
    path = tmp_path / "gold.jsonl"
    path.write_text("\n".join(json.dumps(item) for item in items))
    g = gold.load_gold(path, ["Acting", "Story", "Visuals", "Music"], multiple=True)
    assert g.label_for("gold review 2") == "Music + Story" and g.label_for("gold review 1") == "(none)"

    def answer(who, text, labels, minute):
        result = [{"from_name": "aspects", "to_name": "review", "type": "choices", "value": {"choices": labels}}]
        return {
            "completed_by": who,
            "was_cancelled": False,
            "result": result if labels else [],
            "created_at": f"2026-11-30T10:{minute:02d}:00Z",
        }

    tasks = []
    for i, item in enumerate(items):
        right = list(reversed(item["label"]))  # the order chosen does not matter
        off = item["label"][:1] if len(item["label"]) > 1 else ["Acting", "Story"]  # one label short or too many
        tasks.append(
            {
                "id": i + 1,
                "data": {"text": item["text"]},
                "annotations": [answer(1, item["text"], right, i), answer(2, item["text"], off, i)],
            }
        )
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    report = drift.drift_report(export, g, window=4, threshold=0.9, from_name="aspects", multiple=True)
    rows = by_annotator(report)
    assert rows["1"]["accuracy"] == 1.0 and not rows["1"]["flagged"]
    assert rows["2"]["accuracy"] == 0.0 and rows["2"]["flagged"]
    assert rows["2"]["errors"]["(none)"] == {"Acting + Story": 3}
    # The CLI takes the multi-label tag from the config.
    cli = run_cli(
        "drift",
        str(export),
        "--gold",
        str(path),
        "--config",
        str(ROOT / "label_config" / "review_facets.xml"),
        "--from-name",
        "aspects",
        "--window",
        "4",
        "--format",
        "json",
    )
    assert cli.returncode == 1 and json.loads(cli.stdout)["flagged"] == ["2"], cli.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x", "label": ["Plot"]}))
    with pytest.raises(gold.GoldError, match="unknown label 'Plot'"):
        gold.load_gold(bad, ["Acting", "Story"], multiple=True)
