"""Agreement statistics (backend/quality/agreement.py) and their CLI (labelloop agreement).

The fixtures in tests/data/agreement/ hold the same pilot three ways (JSON, JSON-MIN, CSV): 3 annotators, 14 tasks.
Tasks 1-8 are labeled by all three except task 7 (annotator 3 cancelled); task 6 has two annotations by annotator
2, the newer one (by updated_at) listed first; task 9 has one annotator; task 10 none; task 11 only an empty and a
cancelled annotation; task 12 an out-of-config "Mixed"; tasks 13 (data.synthetic) and 14 (meta.synthetic) are
synthetic; tasks 1, 5 and 9 carry predictions (JSON only).
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from itertools import combinations
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
import warm
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from backend.labelstudio import export as exports
from backend.labelstudio.export import MISSING
from backend.quality import agreement

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / "data" / "agreement"
SCRIPT = warm.labelloop("agreement")
LABELS = ["Positive", "Negative", "Neutral"]
STAT_KEYS = (
    "cohen_kappa",
    "cohen_kappa_ci",
    "cohen_kappa_n",
    "fleiss_kappa",
    "fleiss_kappa_ci",
    "krippendorff_alpha",
    "krippendorff_alpha_ci",
    "percent_agreement",
    "percent_agreement_ci",
    "per_label_agreement",
    "n_items",
    "annotators",
    "bands",
)


def write_export(path: Path, tasks: list[tuple[int, dict]]) -> Path:
    """A minimal Label Studio JSON export: (task id, {annotator: label}) per task."""
    exported = [
        {
            "id": task_id,
            "data": {"text": f"review {task_id}"},
            "annotations": [
                {
                    "completed_by": annotator,
                    "was_cancelled": False,
                    "result": [
                        {
                            "from_name": "sentiment",
                            "to_name": "review",
                            "type": "choices",
                            "value": {"choices": [label]},
                        }
                    ],
                }
                for annotator, label in labels.items()
            ],
        }
        for task_id, labels in tasks
    ]
    path.write_text(json.dumps(exported))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return warm.run([*SCRIPT, *args], cwd=ROOT, timeout=120)


# ---------------------------------------------------------------------------------------------------------------
# Hand-computed and published cases


def test_cohen_kappa_hand_computed():
    # 50 items, yes/no: both yes 20, A yes B no 5, A no B yes 10, both no 15.
    # p_o = 35/50 = 0.7; A says yes 25/50, B 30/50; p_e = 0.5·0.6 + 0.5·0.4 = 0.5
    # κ = (0.7 − 0.5)/(1 − 0.5) = 0.4
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert agreement.cohen_kappa(a, b) == pytest.approx(0.4)
    assert agreement.landis_koch(agreement.cohen_kappa(a, b)) == "fair"


def test_cohen_kappa_uses_only_common_items():
    a = [0, 1, 0, 1, MISSING, 1]
    b = [0, 1, 1, 1, 0, MISSING]
    assert agreement.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score([0, 1, 0, 1], [0, 1, 1, 1]))


def test_perfect_agreement_is_one():
    codes = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [0, 0, 0], [1, 1, MISSING]])
    stats = agreement.point_statistics(codes, 3)
    assert all(value == pytest.approx(1.0) for value in stats["cohen"].values())
    assert stats["fleiss"] == pytest.approx(1.0)
    assert stats["alpha"] == pytest.approx(1.0)
    assert stats["percent"] == 1.0
    assert agreement.specific_agreement(codes, 3) == [1.0, 1.0, 1.0]


def test_fleiss_kappa_wikipedia_example():
    # https://en.wikipedia.org/wiki/Fleiss%27_kappa#Worked_example: 10 items, 14 raters, 5 categories, κ = 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    codes = np.array([[category for category, n in enumerate(row) for _ in range(n)] for row in table])
    assert codes.shape == (10, 14)
    assert agreement.fleiss_kappa(codes, 5) == pytest.approx(0.20993, abs=1e-5)


def test_krippendorff_alpha_hand_computed_and_published():
    # 2 coders, units (P,P), (P,N), (N,N), (N,N): n = 8 values, n_P = 3, n_N = 5; the one disagreeing unit puts
    # 1 in o_PN and 1 in o_NP, so α = 1 − (n − 1)·Σ o_ck / Σ n_c·n_k (over c ≠ k) = 1 − 7·2 / (2·3·5) = 8/15.
    codes = np.array([[0, 0], [0, 1], [1, 1], [1, 1]])
    assert agreement.krippendorff_alpha(codes) == pytest.approx(8 / 15)
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, nominal α = 0.743.
    m = MISSING
    coders = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, m, m, m],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, m, 3],
        [m, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, m],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, m],
    ]
    codes = np.array([[v - 1 if v != m else m for v in row] for row in coders]).T
    assert agreement.krippendorff_alpha(codes) == pytest.approx(0.743, abs=5e-4)


def test_percent_and_specific_agreement_hand_computed():
    P, N, U = 0, 1, 2
    # Two annotators: (P,P) (P,N) (N,N) (U,U), plus an item with one label that must not count.
    codes = np.array([[P, P], [P, N], [N, N], [U, U], [P, MISSING]])
    assert agreement.percent_agreement(codes) == pytest.approx(3 / 4)
    # Specific agreement 2·n_both/(n_a + n_b): P 2·1/(2+1), N 2·1/(1+2), U 2·1/(1+1)
    assert agreement.specific_agreement(codes, 3) == pytest.approx([2 / 3, 2 / 3, 1.0])
    # Three annotators on one item (P,P,N): P has 2·1 agreeing of 2·2 possible pairings, N 0 of 1·2.
    assert agreement.specific_agreement(np.array([[P, P, N]]), 3) == [0.5, 0.0, None]
    assert agreement.percent_agreement(np.array([[P, P, N]])) == 0.0


@pytest.mark.parametrize(
    "value, band",
    [
        (-0.05, "poor"),
        (0.0, "slight"),
        (0.2, "slight"),
        (0.21, "fair"),
        (0.4, "fair"),
        (0.41, "moderate"),
        (0.6, "moderate"),
        (0.61, "substantial"),
        (0.8, "substantial"),
        (0.81, "almost perfect"),
        (1.0, "almost perfect"),
        (None, None),
    ],
)
def test_landis_koch_bands(value, band):
    assert agreement.landis_koch(value) == band


# ---------------------------------------------------------------------------------------------------------------
# Against the libraries on random data


def random_codes(seed: int, items: int = 80, annotators: int = 4, labels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, labels, items)
    noise = rng.integers(0, labels, (items, annotators))
    codes = np.where(rng.random((items, annotators)) < 0.7, truth[:, None], noise)
    codes[rng.random((items, annotators)) < 0.2] = MISSING
    return codes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_statistics_match_libraries_on_random_data(seed):
    codes = random_codes(seed)
    stats = agreement.point_statistics(codes, 3)
    frame = pd.DataFrame(codes).replace(MISSING, np.nan)
    for i, j in combinations(range(codes.shape[1]), 2):
        both = frame[[i, j]].dropna()
        assert stats["cohen"][(i, j)] == pytest.approx(cohen_kappa_score(both[i], both[j]))
    complete = frame.dropna().to_numpy(int)
    assert stats["fleiss"] == pytest.approx(statsmodels_fleiss_kappa(aggregate_raters(complete)[0]))
    assert stats["alpha"] == pytest.approx(
        krippendorff.alpha(reliability_data=frame.to_numpy().T, level_of_measurement="nominal")
    )
    multi = frame[frame.count(axis=1) >= 2]
    assert stats["percent"] == pytest.approx((multi.nunique(axis=1) == 1).mean())


def test_bootstrap_resamples_compute_the_same_statistics_as_the_libraries():
    # The bootstrap works from per-item tables for speed; on any resample it must equal the library path.
    codes = random_codes(3, items=60)
    resample = agreement._Resampler(codes, 3)
    rng = np.random.default_rng(5)
    for _ in range(20):
        idx = rng.integers(0, len(codes), len(codes))
        fast, slow = resample(idx), agreement.point_statistics(codes[idx], 3)
        for pair, value in slow["cohen"].items():
            assert fast["cohen"][pair] == pytest.approx(value if value is not None else np.nan, nan_ok=True)
        for name in ("fleiss", "alpha", "percent"):
            assert fast[name] == pytest.approx(slow[name] if slow[name] is not None else np.nan, nan_ok=True)


def test_export_statistics_match_libraries_and_pair_keys_sort_numerically(tmp_path):
    rng = np.random.default_rng(11)
    annotators = [10, 2, 3]  # "2|10" must come out in numeric order, not as the strings "10" < "2"
    tasks = []
    for task_id in range(40):
        labels = {
            a: LABELS[rng.integers(0, 3) if rng.random() < 0.4 else task_id % 3]
            for a in annotators
            if rng.random() < 0.85
        }
        tasks.append((task_id, labels))
    report = agreement.analyse(exports.load_export(write_export(tmp_path / "e.json", tasks)), bootstrap=0)
    assert report["annotators"] == ["2", "3", "10"]
    assert set(report["cohen_kappa"]) == {"2|3", "2|10", "3|10"}
    for key, value in report["cohen_kappa"].items():
        a, b = (int(x) for x in key.split("|"))
        common = [(labels[a], labels[b]) for _, labels in tasks if a in labels and b in labels]
        assert value == pytest.approx(cohen_kappa_score(*zip(*common)))
        assert report["cohen_kappa_n"][key] == len(common)


def test_mixed_int_and_email_annotators_order_as_strings(tmp_path):
    export = write_export(
        tmp_path / "e.json",
        [
            (1, {"zed@x.org": "Positive", 7: "Positive", "amy@x.org": "Negative"}),
            (2, {"zed@x.org": "Negative", 7: "Negative", "amy@x.org": "Negative"}),
        ],
    )
    report = agreement.analyse(exports.load_export(export), bootstrap=0)
    assert report["annotators"] == ["7", "amy@x.org", "zed@x.org"]
    assert set(report["cohen_kappa"]) == {"7|amy@x.org", "7|zed@x.org", "amy@x.org|zed@x.org"}
    assert report["cohen_kappa"]["7|zed@x.org"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------------
# Bootstrap


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    codes = random_codes(4, items=200, annotators=3)
    first, _ = agreement.bootstrap_intervals(codes, 3, resamples=300, seed=1)
    again, _ = agreement.bootstrap_intervals(codes, 3, resamples=300, seed=1)
    other, _ = agreement.bootstrap_intervals(codes, 3, resamples=300, seed=2)
    assert first == again
    assert first != other
    stats = agreement.point_statistics(codes, 3)
    for name in ("fleiss", "alpha", "percent"):
        low, high = first[name]
        assert low < stats[name] < high
    for pair, (low, high) in first["cohen"].items():
        assert low < stats["cohen"][pair] < high


def test_bootstrap_off_gives_null_intervals(tmp_path):
    report = agreement.analyse(exports.load_export(DATA / "export.json", labels=LABELS), bootstrap=0)
    assert report["fleiss_kappa_ci"] is None and report["krippendorff_alpha_ci"] is None
    assert report["percent_agreement_ci"] is None
    assert set(report["cohen_kappa_ci"].values()) == {None}


def test_bootstrap_of_1000_items_is_fast(tmp_path):
    rng = np.random.default_rng(0)
    tasks = [
        (t, {a: LABELS[t % 3] if rng.random() < 0.8 else LABELS[rng.integers(0, 3)] for a in (1, 2, 3)})
        for t in range(1000)
    ]
    dataset = exports.load_export(write_export(tmp_path / "big.json", tasks))
    started = time.perf_counter()
    report = agreement.analyse(dataset, bootstrap=1000)
    assert time.perf_counter() - started < 5.0
    assert report["fleiss_kappa_ci"][0] < report["fleiss_kappa"] < report["fleiss_kappa_ci"][1]


# ---------------------------------------------------------------------------------------------------------------
# Degenerate cases


def test_pair_with_fewer_than_two_common_items_is_null(tmp_path):
    export = write_export(
        tmp_path / "e.json",
        [
            (1, {1: "Positive", 2: "Positive"}),
            (2, {1: "Negative", 2: "Positive"}),
            (3, {1: "Negative", 2: "Negative"}),
            (4, {1: "Positive", 3: "Negative"}),
        ],
    )
    report = agreement.analyse(exports.load_export(export))
    assert report["cohen_kappa"]["1|3"] is None and report["cohen_kappa_n"]["1|3"] == 1
    assert report["cohen_kappa"]["2|3"] is None and report["cohen_kappa_n"]["2|3"] == 0
    assert report["cohen_kappa_ci"]["1|3"] is None
    assert report["cohen_kappa"]["1|2"] is not None
    assert any("1|3" in note and "fewer than 2" in note for note in report["notes"])
    assert report["fleiss_kappa"] is None  # no item was labeled by all three
    assert any("no item was labeled by every annotator" in note for note in report["notes"])


def test_constant_labels_give_null_kappa_with_a_note(tmp_path):
    export = write_export(tmp_path / "e.json", [(t, {1: "Positive", 2: "Positive"}) for t in range(5)])
    report = agreement.analyse(exports.load_export(export))
    assert report["cohen_kappa"] == {"1|2": None}
    assert report["fleiss_kappa"] is None and report["krippendorff_alpha"] is None
    assert report["percent_agreement"] == 1.0
    assert report["bands"]["cohen_kappa"]["1|2"] is None
    assert any("1|2" in note and "undefined" in note for note in report["notes"])
    assert any("Krippendorff" in note for note in report["notes"])


def test_resamples_where_a_statistic_is_undefined_are_noted(tmp_path):
    # Only one item of ten is Negative: about a third of the resamples miss it, and there κ is undefined.
    tasks = [(t, {1: "Positive", 2: "Positive"}) for t in range(9)] + [(9, {1: "Negative", 2: "Negative"})]
    report = agreement.analyse(exports.load_export(write_export(tmp_path / "e.json", tasks)), bootstrap=200)
    assert report["cohen_kappa"]["1|2"] == pytest.approx(1.0)
    assert any(note.startswith("Cohen's κ for 1|2 was undefined in") for note in report["notes"])


def test_one_annotator_only(tmp_path):
    export = write_export(tmp_path / "e.json", [(1, {5: "Positive"}), (2, {5: "Negative"})])
    report = agreement.analyse(exports.load_export(export))
    assert report["cohen_kappa"] == {}
    assert report["fleiss_kappa"] is None and report["krippendorff_alpha"] is None
    assert report["percent_agreement"] is None
    assert any("1 annotator(s) only" in note for note in report["notes"])
    passed, message = agreement.check_gate(report, 0.8)
    assert not passed and "null" in message


def test_empty_export_does_not_crash(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    report = agreement.analyse(exports.load_export(path))
    assert report["n_items"] == 0 and report["cohen_kappa"] == {} and report["fleiss_kappa"] is None
    assert "Counts" in agreement.format_table(report)


# ---------------------------------------------------------------------------------------------------------------
# The fixtures


@pytest.fixture(scope="module")
def json_report():
    return agreement.analyse(exports.load_export(DATA / "export.json", labels=LABELS), bootstrap=200)


def test_json_fixture_counts(json_report):
    assert json_report["counts"] == {
        "tasks_in_export": 14,
        "synthetic_tasks_excluded": 2,  # task 13 (data.synthetic) and 14 (meta.synthetic)
        "tasks_used": 10,  # tasks 1-9 and 12
        "single_annotator_tasks": 1,  # task 9
        "unlabeled_tasks": 2,  # task 10 (no annotation) and 11 (empty result + cancelled)
        "annotations_used": 26,
        "cancelled_annotations": 2,  # tasks 7 and 11
        "duplicate_annotations": 1,  # task 6, annotator 2
        "empty_annotations": 1,  # task 11
        "multi_choice_annotations": 0,
        "out_of_config_labels": 1,  # "Mixed" on task 12
        "annotations_without_annotator": 0,
        "predictions_ignored": 3,
        "model_annotations_excluded": 0,
    }
    assert json_report["out_of_config_labels"] == {"Mixed": 1}
    assert json_report["annotators"] == ["1", "2", "3"]  # predictions did not become an annotator
    assert json_report["n_items"] == 10
    notes = " ".join(json_report["notes"])
    for words in ("synthetic", "prediction", "cancelled", "outside the config", "one annotator only", "replaced"):
        assert words in notes


def test_json_fixture_statistics(json_report):
    # Annotators 1 and 2 on tasks 1-8 (task 12 lost 2's "Mixed"):
    #   1: P U P U N P N U      2: P N P U P P N N   → agree on tasks 1, 3, 4, 6, 7: p_o = 5/8
    #   1 uses P 3, N 2, U 3; 2 uses P 4, N 3, U 1  → p_e = (3·4 + 2·3 + 3·1)/64 = 21/64
    #   κ = (40/64 − 21/64)/(1 − 21/64) = 19/43
    assert json_report["cohen_kappa"]["1|2"] == pytest.approx(19 / 43)
    assert json_report["cohen_kappa_n"] == {"1|2": 8, "1|3": 8, "2|3": 7}
    assert json_report["bands"]["cohen_kappa"]["1|2"] == "moderate"
    low, high = json_report["cohen_kappa_ci"]["1|2"]
    assert low < 19 / 43 < high
    # Fleiss on the 7 tasks all three labeled (1-6 and 8), percent agreement on the 9 with two or more labels.
    assert json_report["fleiss_n_items"] == 7
    assert json_report["percent_agreement_n_items"] == 9
    # Of tasks 1-8 and 12, all agree on 1, 4, 6, 7 and 12.
    assert json_report["percent_agreement"] == pytest.approx(5 / 9)
    assert json_report["bands"]["fleiss_kappa"] == agreement.landis_koch(json_report["fleiss_kappa"])


def test_json_fixture_keeps_the_latest_annotation_and_reads_dict_annotators():
    dataset = exports.load_export(DATA / "export.json", labels=LABELS)
    by_task = {item.task_id: item for item in dataset.items}
    # Task 6: annotator 2's Positive (updated 2024-03-03) is listed before their Negative (2024-03-02).
    assert by_task[6].labels == {1: "Positive", 2: "Positive", 3: "Positive"}
    assert by_task[4].labels[3] == "Neutral"  # completed_by was {"id": 3, "email": ...}
    assert 3 not in by_task[7].labels  # cancelled
    assert by_task[12].labels == {1: "Positive", 3: "Positive"}  # "Mixed" dropped
    assert not {10, 11, 13, 14} & set(by_task)
    assert by_task[1].text == "A gorgeous, moving film."


@pytest.mark.parametrize("name", ["export_min.json", "export.csv"])
def test_json_min_and_csv_give_the_same_numbers(json_report, name):
    report = agreement.analyse(exports.load_export(DATA / name, labels=LABELS), bootstrap=200)
    assert report["source"]["format"] == ("csv" if name.endswith(".csv") else "json-min")
    assert report["source"]["from_name"] == "sentiment"
    for key in STAT_KEYS:
        assert report[key] == json_report[key], key
    assert report["out_of_config_labels"] == {"Mixed": 1}
    assert report["counts"]["synthetic_tasks_excluded"] == 2
    assert report["counts"]["unlabeled_tasks"] == 2

    # Same tasks, ids (CSV's "12" read as 12), annotators, labels and texts as the JSON export.
    def items(path: Path) -> list[tuple]:
        return [(i.task_id, i.text, i.labels) for i in exports.load_export(path, labels=LABELS).items]

    assert items(DATA / name) == items(DATA / "export.json")


def test_without_labels_every_observed_label_counts():
    report = agreement.analyse(exports.load_export(DATA / "export.json"), bootstrap=0)
    assert report["labels"] == ["Mixed", "Negative", "Neutral", "Positive"]
    assert report["out_of_config_labels"] == {}
    assert report["cohen_kappa_n"]["1|2"] == 9


def test_labels_from_config(tmp_path):
    assert exports.labels_from_config(ROOT / "label_config" / "sentiment.xml") == ("sentiment", LABELS)
    config = tmp_path / "two.xml"
    config.write_text(
        '<View><Text name="t" value="$text"/>'
        '<Choices name="topic" toName="t"><Choice value="Plot"/><Choice value="Acting" alias="act"/>'
        '</Choices><Choices name="tone" toName="t"><Choice value="Warm"/><Choice value="Cold"/></Choices>'
        "</View>"
    )
    assert exports.labels_from_config(config) == ("topic", ["Plot", "act"])
    assert exports.labels_from_config(config, "tone") == ("tone", ["Warm", "Cold"])
    with pytest.raises(exports.ExportError, match='no <Choices name="mood">'):
        exports.labels_from_config(config, "mood")
    config.write_text("<View><Choices")
    with pytest.raises(exports.ExportError, match="not valid XML"):
        exports.labels_from_config(config)


def test_from_name_picks_the_choices_tag(tmp_path):
    task = {
        "id": 1,
        "data": {"text": "x"},
        "annotations": [
            {
                "completed_by": a,
                "result": [
                    {"from_name": "topic", "to_name": "t", "type": "choices", "value": {"choices": [topic]}},
                    {"from_name": "sentiment", "to_name": "t", "type": "choices", "value": {"choices": [sentiment]}},
                ],
            }
            for a, topic, sentiment in ((1, "Plot", "Positive"), (2, "Acting", "Positive"))
        ],
    }
    path = tmp_path / "e.json"
    path.write_text(json.dumps([task]))
    assert exports.load_export(path).items[0].labels == {1: "Plot", 2: "Acting"}  # the first choices region
    assert exports.load_export(path, from_name="sentiment").items[0].labels == {1: "Positive", 2: "Positive"}


def test_json_min_label_column_detection(tmp_path):
    rows = [
        {"id": t, "text": f"r{t}", "genre": genre, "sentiment": label, "annotator": a}
        for t, genre in ((1, "drama"), (2, "comedy"))
        for a, label in ((1, "Positive"), (2, "Negative"))
    ]
    path = tmp_path / "min.json"
    path.write_text(json.dumps(rows))
    assert exports.load_export(path, labels=LABELS).from_name == "sentiment"
    assert exports.load_export(path, from_name="genre").labels == ["comedy", "drama"]
    with pytest.raises(exports.ExportError, match="--from-name"):
        exports.load_export(path)
    with pytest.raises(exports.ExportError, match="no column 'mood'"):
        exports.load_export(path, from_name="mood")


def test_duplicates_without_timestamps_keep_the_last_in_order(tmp_path):
    rows = [
        {"id": 1, "text": "x", "sentiment": "Negative", "annotator": 1},
        {"id": 1, "text": "x", "sentiment": "Positive", "annotator": 2},
        {"id": 1, "text": "x", "sentiment": "Positive", "annotator": 1},
    ]
    path = tmp_path / "min.json"
    path.write_text(json.dumps(rows))
    dataset = exports.load_export(path)
    assert dataset.items[0].labels == {1: "Positive", 2: "Positive"}
    assert dataset.counts["duplicate_annotations"] == 1


def test_multi_choice_annotations_are_counted_not_crashed_on(tmp_path):
    task = {
        "id": 1,
        "data": {"text": "x"},
        "annotations": [
            {
                "completed_by": 1,
                "result": [
                    {
                        "from_name": "s",
                        "to_name": "t",
                        "type": "choices",
                        "value": {"choices": ["Positive", "Negative"]},
                    }
                ],
            },
            {
                "completed_by": 2,
                "result": [{"from_name": "s", "to_name": "t", "type": "choices", "value": {"choices": ["Positive"]}}],
            },
        ],
    }
    path = tmp_path / "e.json"
    path.write_text(json.dumps([task]))
    dataset = exports.load_export(path)
    assert dataset.counts["multi_choice_annotations"] == 1
    assert dataset.items[0].labels == {2: "Positive"}
    # Label Studio's CSV writes several choices as a JSON object in the cell.
    csv_path = tmp_path / "e.csv"
    csv_path.write_text('id,annotator,s\n1,1,"{""choices"": [""Positive"", ""Negative""]}"\n1,2,Positive\n')
    dataset = exports.load_export(csv_path)
    assert dataset.counts["multi_choice_annotations"] == 1
    assert dataset.items[0].labels == {2: "Positive"}


def test_gate_messages(json_report):
    passed, message = agreement.check_gate(json_report, 0.8)
    assert not passed
    assert message == "gate failed: minimum pairwise Cohen's kappa (2|3) = 0.125 is 0.675 below the target 0.800"
    passed, message = agreement.check_gate(json_report, 0.1, "fleiss")
    assert passed and "Fleiss" in message
    passed, message = agreement.check_gate(json_report, 0.9, "alpha")
    assert not passed and "Krippendorff's alpha" in message


# ---------------------------------------------------------------------------------------------------------------
# The command line


def test_cli_json_output_gate_failure_and_disagreements(tmp_path):
    out = tmp_path / "adjudicate.csv"
    result = run_cli(
        str(DATA / "export.json"),
        "--config",
        str(ROOT / "label_config" / "sentiment.xml"),
        "--format",
        "json",
        "--bootstrap",
        "100",
        "--min-kappa",
        "0.8",
        "--disagreements",
        str(out),
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON object
    for key in (*STAT_KEYS, "counts", "notes"):
        assert key in report
    assert report["cohen_kappa"]["1|2"] == pytest.approx(19 / 43)
    assert report["gate"]["passed"] is False
    assert result.stderr.strip().splitlines() == [
        "gate failed: minimum pairwise Cohen's kappa (2|3) = 0.125 is 0.675 below the target 0.800"
    ]

    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Tasks with 2+ labels that differ: 2 (U,N,P), 3 (P,P,U), 5 (N,P,N), 8 (U,N,U); 12 agrees once "Mixed" is gone.
    assert [row["task_id"] for row in rows] == ["2", "3", "5", "8"]
    assert rows[2] == {
        "task_id": "5",
        "text": "The acting saves a weak script.",
        "1": "Negative",
        "2": "Positive",
        "3": "Negative",
    }


def test_cli_gate_passes_above_target():
    result = run_cli(
        str(DATA / "export.csv"),
        "--labels",
        "Positive,Negative,Neutral",
        "--bootstrap",
        "0",
        "--min-kappa",
        "0.3",
        "--gate-on",
        "alpha",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("gate passed: Krippendorff's alpha = 0.455")
    assert "Cohen's kappa per pair" in result.stdout and "1|2" in result.stdout
    assert "moderate" in result.stdout and "synthetic tasks excluded" in result.stdout


@pytest.mark.parametrize("content, message", [(None, "error: cannot read"), ("this is not json\n", "error: ")])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, content, message):
    path = tmp_path / "export.json"
    if content is not None:
        path.write_text(content)
    result = run_cli(str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr


# Each CLI start-up imports scikit-learn (about 2 s), so the remaining cases call the script's main() in-process.


@pytest.fixture(scope="module")
def cli_main():
    from backend.cli.agreement import main

    return main


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"tasks": []}', "error: unknown format"),
        ('[{"text": "no id column"}]', "error: unknown format"),
        ('["a", "b"]', "error: unknown format"),
    ],
)
def test_cli_unknown_format_exits_2(tmp_path, capsys, cli_main, content, message):
    path = tmp_path / "export.json"
    path.write_text(content)
    assert cli_main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message) and len(captured.err.strip().splitlines()) == 1


def test_cli_usage_errors_are_one_line(capsys, cli_main):
    with pytest.raises(SystemExit) as exit_info:
        cli_main([str(DATA / "export.json"), "--format", "xml"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: argument --format: invalid choice")
    assert cli_main([str(DATA / "export.json"), "--labels", "A,B", "--config", "x.xml"]) == 2
    assert "not both" in capsys.readouterr().err


def test_cli_help_explains_every_option(capsys, cli_main):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--format",
        "--from-name",
        "--labels",
        "--config",
        "--text-key",
        "--bootstrap",
        "--seed",
        "--min-kappa",
        "--gate-on",
        "--disagreements",
    ):
        assert option in text
    assert text.count("e.g.") >= 11  # one example per option and the positional export
    assert "labelloop agreement export.json" in text


def test_cli_text_key_and_gate_on_fleiss(tmp_path, capsys, cli_main):
    out = tmp_path / "d.csv"
    code = cli_main(
        [
            str(DATA / "export_min.json"),
            "--labels",
            "Positive,Negative,Neutral",
            "--bootstrap",
            "0",
            "--min-kappa",
            "0.5",
            "--gate-on",
            "fleiss",
            "--text-key",
            "id",
            "--disagreements",
            str(out),
            "--format",
            "json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    report = json.loads(captured.out)
    assert captured.err.strip() == (
        f"gate failed: Fleiss' kappa = {report['fleiss_kappa']:.3f} is "
        f"{0.5 - report['fleiss_kappa']:.3f} below the target 0.500"
    )
    rows = list(csv.reader(out.open(newline="")))
    assert rows[0] == ["task_id", "text", "1", "2", "3"]
    assert [row[1] for row in rows[1:]] == ["2", "3", "5", "8"]  # --text-key id: the text column holds the id


def test_labels_the_model_wrote_are_not_an_annotators(tmp_path):
    """finish --apply's annotations (marked, never saved since by a person) are left out; once a person saves one,
    it is theirs."""
    from backend.labelstudio import model_labels

    def ann(who, label, **extra):
        return {
            "completed_by": who,
            "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
            **extra,
        }

    stamp = {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    edited = {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z"}
    tasks = [
        {
            "id": 1,
            "data": {"text": "a"},
            "annotations": [ann(1, "Positive"), ann(2, "Negative", import_id=model_labels.MARK, **stamp)],
        },
        {
            "id": 2,
            "data": {"text": "b"},
            "annotations": [ann(1, "Positive"), ann(2, "Positive", import_id=model_labels.MARK, **edited)],
        },
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    dataset = exports.load_export(path, labels=LABELS)
    assert dataset.counts["model_annotations_excluded"] == 1
    assert {item.task_id: item.labels for item in dataset.items} == {
        1: {1: "Positive"},
        2: {1: "Positive", 2: "Positive"},
    }
    assert any("the model wrote" in note for note in dataset.notes)


# ---------------------------------------------------------------- multi-label questions

MULTI = {  # task id -> {annotator: labels chosen}
    1: {1: ["Acting"], 2: ["Acting"], 3: ["Acting", "Story"]},
    2: {1: [], 2: [], 3: []},
    3: {1: ["Story", "Music"], 2: ["Story"], 3: ["Music"]},
    4: {1: ["Visuals"], 2: ["Acting"]},
    5: {1: ["Story"], 2: ["Story"], 3: ["Story"]},
    6: {1: ["Acting", "Visuals"], 3: ["Acting", "Visuals"]},
}
ASPECTS = ["Acting", "Story", "Visuals", "Music"]


def write_multilabel_export(path: Path) -> Path:
    def result(labels):
        # No label chosen: the annotation holds only its comment, as Label Studio saves it.
        if not labels:
            return [{"from_name": "notes", "to_name": "review", "type": "textarea", "value": {"text": ["none"]}}]
        return [{"from_name": "aspects", "to_name": "review", "type": "choices", "value": {"choices": labels}}]

    exported = [
        {
            "id": task_id,
            "data": {"text": f"review {task_id}"},
            "annotations": [
                {"completed_by": who, "was_cancelled": False, "result": result(labels)} for who, labels in votes.items()
            ],
        }
        for task_id, votes in MULTI.items()
    ]
    path.write_text(json.dumps(exported))
    return path


def test_multi_label_alpha_uses_the_masi_set_distance_as_nltk_computes_it(tmp_path):
    from nltk.metrics.agreement import AnnotationTask
    from nltk.metrics.distance import masi_distance

    dataset = exports.load_export(
        write_multilabel_export(tmp_path / "export.json"), from_name="aspects", labels=ASPECTS, multiple=True
    )
    report = agreement.analyse_multilabel(dataset)
    triples = [
        (str(who), str(task), frozenset(labels)) for task, votes in MULTI.items() for who, labels in votes.items()
    ]
    # nltk divides by zero on two empty sets; equal sets are at distance 0 by any definition.
    reference = AnnotationTask(triples, distance=lambda a, b: 0.0 if a == b else masi_distance(a, b)).alpha()
    assert report["krippendorff_alpha_masi"] == pytest.approx(reference, abs=1e-9)
    assert report["n_items"] == 6 and report["exact_set_agreement"] == pytest.approx(3 / 6)
    # Per label: Cohen's kappa of each pair on "chosen or not", over the items both answered.
    for label in ASPECTS:
        a = [int(label in MULTI[t][1]) for t in MULTI if 1 in MULTI[t] and 2 in MULTI[t]]
        b = [int(label in MULTI[t][2]) for t in MULTI if 1 in MULTI[t] and 2 in MULTI[t]]
        expected = cohen_kappa_score(a, b) if len(set(a) | set(b)) > 1 else None
        got = report["per_label"][label]["cohen_kappa"]["1|2"]
        assert (got is None and (expected is None or np.isnan(expected))) or got == pytest.approx(expected)
    assert report["per_label"]["Story"]["chosen"] == 6


def test_masi_distance_matches_its_definition():
    acting, story, music = 1, 2, 8
    assert agreement.masi_distance(acting, acting) == 0.0
    assert agreement.masi_distance(acting, acting | story) == pytest.approx(1 - 0.5 * 2 / 3)
    assert agreement.masi_distance(story | music, story | acting) == pytest.approx(1 - 1 / 3 * 1 / 3)
    assert agreement.masi_distance(acting, music) == 1.0 and agreement.masi_distance(0, music) == 1.0


def test_the_cli_reads_a_multi_label_tag_from_the_config_and_gates_on_alpha(tmp_path):
    export = write_multilabel_export(tmp_path / "export.json")
    answer = run_cli(
        str(export),
        "--config",
        str(ROOT / "label_config" / "review_facets.xml"),
        "--from-name",
        "aspects",
        "--format",
        "json",
        "--min-kappa",
        "0.99",
    )
    report = json.loads(answer.stdout)
    assert answer.returncode == 1 and report["multi_label"] is True and report["labels"] == ASPECTS
    assert "gate failed: Krippendorff's alpha (MASI)" in answer.stderr
    table = run_cli(str(export), "--from-name", "aspects", "--multi-label", "--labels", ",".join(ASPECTS))
    assert table.returncode == 0 and "MASI" in table.stdout and "Acting" in table.stdout
