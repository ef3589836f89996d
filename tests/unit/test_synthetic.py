"""Synthetic examples: the plan, generation on the tiny Qwen2 (provenance, bounds, resuming), the filters with their
reasons, the reports, the Label Studio task format and the command line. No real model or Label Studio here:
tests/e2e/test_synthetic_e2e.py and tests/integration/test_synthetic_real.py run those."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import warm
from helpers import CONFIG, ROOT, tiny_predictor
from rouge_score import rouge_scorer

from backend.labelstudio import export as exports
from backend.labelstudio import schema as schemas
from backend.quality import drift, gold
from backend.synthetic import filters as sf
from backend.synthetic import generate as syn
from backend.synthetic import report as sr

SCRIPT = warm.labelloop("synthetic")
SCHEMA = schemas.parse(CONFIG)
LABELS = SCHEMA.labels

REAL = pd.DataFrame(
    [(f"A warm, funny film number {i} that I would happily watch again.", "Positive") for i in range(6)]
    + [(f"A dull, lifeless sequel number {i} that nobody should sit through.", "Negative") for i in range(4)]
    + [
        ("Two brothers inherit a failing farm and must save it before winter.", "Neutral"),
        ("A detective returns to her home town to solve an old murder.", "Neutral"),
    ],
    columns=["text", "label"],
)


def words(text: str) -> int:
    return len(text.split())


# ---------------------------------------------------------------- inputs and plan


def test_parse_mix_and_its_errors():
    assert syn.parse_mix("conditional=3, minority=5") == {"conditional": 3, "minority": 5}
    for bad, message in (
        ("poetry=3", "expected MODE=COUNT"),
        ("minority", "expected MODE=COUNT"),
        ("minority=x", "not a whole number"),
        ("minority=-1", "0 or more"),
        ("minority=0", "no candidates"),
    ):
        with pytest.raises(syn.SyntheticError, match=message):
            syn.parse_mix(bad)


def test_minority_shares_follow_the_deficit_against_the_largest_label():
    counts = {"Positive": 80, "Negative": 58, "Neutral": 12}
    # Deficits 0, 22, 68 of 90: 9.8 and 30.2 of 40, largest remainder to Negative.
    assert syn.minority_shares(counts, LABELS, 40) == {"Negative": 10, "Neutral": 30}
    assert syn.minority_shares({"Positive": 5, "Negative": 5, "Neutral": 5}, LABELS, 7) == {
        "Positive": 3,
        "Negative": 2,
        "Neutral": 2,
    }
    assert sum(syn.minority_shares({"Positive": 3}, LABELS, 11).values()) == 11


def test_label_definitions_come_from_the_guidelines():
    from backend import guidelines

    definitions = syn.label_definitions(guidelines.load(), LABELS)
    assert definitions["Neutral"].startswith("the text states facts")
    assert all(definitions.values())


def test_plan_is_fixed_by_the_seed_and_uses_only_real_texts():
    mix = {"conditional": 6, "paraphrase": 3, "style": 9, "minority": 4}
    sampling = syn.Sampling(max_new_tokens=64)
    first = syn.plan(REAL, LABELS, mix, 7, sampling, words)
    assert [j.__dict__ for j in first] == [j.__dict__ for j in syn.plan(REAL, LABELS, mix, 7, sampling, words)]
    assert [j.__dict__ for j in first] != [j.__dict__ for j in syn.plan(REAL, LABELS, mix, 8, sampling, words)]
    assert Counter(j.mode for j in first) == Counter(mix)
    by_label = REAL.groupby("label")["text"].apply(set).to_dict()
    for job in first:
        assert all(shot in by_label[job.label] for shot in job.shots)
        if job.mode in ("paraphrase", "style"):
            assert job.source in by_label[job.label] and not job.shots
        else:
            assert job.source is None and len(job.shots) == min(syn.SHOTS, len(by_label[job.label]))
    styles = [(j.label, j.style) for j in first if j.mode == "style"]
    assert ("Neutral", "sarcastic") not in styles and len({s for _, s in styles}) >= 3
    # Neutral is the rarest label, so the minority share goes there first.
    assert Counter(j.label for j in first if j.mode == "minority")["Neutral"] == 3


def test_plan_leaves_out_real_texts_too_long_for_the_budget():
    real = pd.concat([REAL, pd.DataFrame([(" ".join(["word"] * 200), "Neutral")], columns=["text", "label"])])
    jobs = syn.plan(real, LABELS, {"minority": 10, "paraphrase": 6}, 0, syn.Sampling(max_new_tokens=64), words)
    assert all(words(t) <= 48 for j in jobs for t in j.shots + [j.source or ""])


def test_batches_hold_one_label_and_take_labels_in_turn():
    jobs = syn.plan(REAL, LABELS, {"conditional": 9, "minority": 6}, 0, syn.Sampling(), words)
    batches = syn.batches(jobs, 2)
    assert sorted(j.index for b in batches for j in b) == list(range(15))
    assert all(len({j.label for j in b}) == 1 and len(b) <= 2 for b in batches)
    assert len({b[0].label for b in batches[:3]}) == 3


def test_load_real_formats_and_errors(tmp_path):
    (tmp_path / "r.csv").write_text("text,label\nGreat fun.,Positive\nBoring.,Negative\n")
    assert syn.load_real(tmp_path / "r.csv").to_dict("records") == [
        {"text": "Great fun.", "label": "Positive"},
        {"text": "Boring.", "label": "Negative"},
    ]
    (tmp_path / "r.jsonl").write_text('{"text": "Great fun.", "label": "Positive"}\n')
    assert len(syn.load_real(tmp_path / "r.jsonl")) == 1
    export = [
        {
            "id": 1,
            "data": {"text": "Loved it."},
            "annotations": [
                {
                    "result": [
                        {
                            "from_name": "sentiment",
                            "to_name": "review",
                            "type": "choices",
                            "value": {"choices": ["Positive"]},
                        }
                    ],
                    "completed_by": 1,
                }
            ],
        },
        {
            "id": 2,
            "data": {"text": "Made up.", "synthetic": True},
            "annotations": [
                {
                    "result": [
                        {
                            "from_name": "sentiment",
                            "to_name": "review",
                            "type": "choices",
                            "value": {"choices": ["Negative"]},
                        }
                    ],
                    "completed_by": 1,
                }
            ],
        },
        {"id": 3, "data": {"text": "Not labeled yet."}, "annotations": []},
    ]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert syn.load_real(tmp_path / "export.json").to_dict("records") == [{"text": "Loved it.", "label": "Positive"}]
    (tmp_path / "bad.csv").write_text("text,label\nGreat fun.,Fantastic\n")
    errors = (("bad.csv", "has label 'Fantastic'"), ("none.csv", "cannot read"), ("r.txt", "unknown file type"))
    for name, message in errors:
        with pytest.raises(syn.SyntheticError, match=message):
            syn.load_real(tmp_path / name)


def test_corpus_sample_avoids_the_evaluation_splits():
    from backend.bench import evaluation

    sample = syn.corpus_sample(120, seed=3)
    test, calibration = evaluation.splits()
    assert len(sample) == 120 and not set(sample["text"]) & (set(test["text"]) | set(calibration["text"]))
    assert set(sample["label"]) == set(LABELS)


def test_clean_removes_chat_wrappers_only():
    assert syn.clean('Here is the paraphrased text:\n"A gorgeous, moving film."') == "A gorgeous, moving film."
    assert syn.clean("Review: Dull and long. ") == "Dull and long."
    assert syn.clean("“Smart and funny.”") == "Smart and funny."
    assert syn.clean('He says "no" and leaves.') == 'He says "no" and leaves.'


# ---------------------------------------------------------------- generation on the tiny model


@pytest.fixture(scope="module")
def predictor():
    import torch

    # The tiny model gains nothing from threads, and on a busy machine OpenMP threads waiting for each other make
    # its generation ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tiny_predictor()
    torch.set_num_threads(threads)


SMALL = syn.Sampling(max_new_tokens=24, batch_size=3)
MIX = {"conditional": 3, "paraphrase": 2, "style": 2, "minority": 3}


@pytest.fixture(scope="module")
def whole(predictor, tmp_path_factory):
    """One uninterrupted run of MIX (the tiny model generates slowly): its result and its file, read only."""
    out = tmp_path_factory.mktemp("whole") / "c.jsonl"
    return syn.generate(predictor, REAL, out, mix=MIX, seed=5, sampling=SMALL, progress=False), out


def test_generate_records_provenance_for_every_item(whole):
    result, out = whole
    items = syn.read_candidates(out)
    assert result.written == result.total == result.planned == len(items) == 10
    assert sorted(i["job"] for i in items) == list(range(10))
    assert len({i["id"] for i in items}) == 10
    real_ids = {syn.text_id(t) for t in REAL["text"]}
    for item in items:
        p = item["provenance"]
        assert p["model"] == "tiny-qwen2" and p["model_identity"] == "test:tiny-qwen2"
        assert p["guidelines_version"] == "1.0.0" and p["intended_label"] == item["intended_label"] in LABELS
        assert p["mode"] == item["mode"] and p["prompt"][0]["role"] == "system"
        assert p["params"]["temperature"] == 0.9 and p["params"]["seed"] == 50_000 + p["params"]["batch"]
        assert p["params"]["max_new_tokens"] <= 24 and p["sources"] and set(p["sources"]) <= real_ids
        assert isinstance(item["raw"], str) and isinstance(item["finished"], bool)
        if item["mode"] == "minority":
            assert p["real_label_counts"] == {"Positive": 6, "Negative": 4, "Neutral": 2}
        if item["mode"] == "style":
            assert item["provenance"]["style"] in syn.STYLES


def test_time_limit_stops_between_batches_and_a_rerun_finishes_the_same_items(predictor, whole, tmp_path):
    ticks = iter([0.0, 0.0, 0.0, 120.0] + [120.0] * 50)  # the third batch starts after the 1-minute limit
    part = tmp_path / "part.jsonl"
    first = syn.generate(
        predictor, REAL, part, mix=MIX, seed=5, sampling=SMALL, max_minutes=1, progress=False, clock=lambda: next(ticks)
    )
    assert first.stopped_by_time and 0 < first.total < 10
    # An interrupted write leaves half a line; it is dropped and its batch written again.
    with part.open("a") as f:
        f.write('{"id": "half')
    second = syn.generate(predictor, REAL, part, mix=MIX, seed=5, sampling=SMALL, progress=False)
    assert not second.stopped_by_time and second.total == 10 and second.written == 10 - first.total

    def by_job(path):
        return {i["job"]: (i["raw"], i["provenance"]["params"]) for i in syn.read_candidates(path)}

    assert by_job(part) == by_job(whole[1])  # same seeds, same batches: the same texts
    assert syn.generate(predictor, REAL, part, mix=MIX, seed=5, sampling=SMALL, progress=False).written == 0


def test_a_file_from_other_settings_is_not_continued(predictor, tmp_path):
    out = tmp_path / "c.jsonl"
    syn.generate(predictor, REAL, out, mix={"conditional": 1}, seed=1, sampling=SMALL, progress=False)
    with pytest.raises(syn.SyntheticError, match="from a run with other settings"):
        syn.generate(predictor, REAL, out, mix={"conditional": 1}, seed=2, sampling=SMALL, progress=False)


def test_generate_rejects_labels_the_config_lacks(predictor, tmp_path):
    real = pd.DataFrame([("Meh.", "Mixed")], columns=["text", "label"])
    with pytest.raises(syn.SyntheticError, match="does not offer"):
        syn.generate(predictor, real, tmp_path / "c.jsonl", mix={"conditional": 1}, sampling=SMALL, progress=False)


# ---------------------------------------------------------------- filters


def bag_embed(texts):
    """Unit bag-of-words vectors: cosine 1 for the same words in any order, low for unrelated texts."""
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for row, text in enumerate(texts):
        for token in sf.tokens(text):
            out[row, int(hashlib.md5(token.encode()).hexdigest(), 16) % 512] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def candidate(i, text, label="Positive", finished=True, mode="conditional"):
    return {"id": f"c{i}", "text": text, "intended_label": label, "finished": finished, "mode": mode}


def fixed_probs(table):
    """A probability function from {text: probabilities}; unknown texts get the first label."""
    return lambda texts: np.array([table.get(t, [0.9, 0.05, 0.05]) for t in texts])


def test_format_problems():
    ok = "A sweet, clever film about growing up."
    assert sf.format_problem(ok, True, LABELS) is None
    assert sf.format_problem("Here is a film that dares to be different.", True, LABELS) is None
    assert sf.format_problem("I cannot recommend it; the reviews are positive.", True, LABELS) is None
    assert sf.format_problem("Sure, I hated myself in the morning. So young, such a wise ****.", True, LABELS) is None
    assert sf.format_problem("1973. A farmer leaves home.\n\nHis son stays behind.", True, LABELS) is None
    spanish = "Donde cae el sol informa un poco sobre un joven de 65 años y un joven de 30 años más que él."
    assert "written in 'es'" in sf.format_problem(spanish, True, LABELS, None, "en")
    assert sf.format_problem(spanish, True, LABELS, None, "es") is None
    assert sf.format_problem("A quiet, disquieting triumph.", True, LABELS, None, "en") is None  # too short to tell
    prompt = [
        {"role": "system", "content": "Reply with the text only: no title, no label."},
        {"role": "user", "content": "Paraphrase this text.\n\nText: A warm and very funny film."},
        {"role": "assistant", "content": "An example the model saw."},
    ]
    assert "repeats the prompt" in sf.format_problem("No title, no label, just fun.", True, LABELS, prompt)
    assert sf.format_problem("A warm and very funny film, truly.", True, LABELS, prompt) is None  # the quoted text
    assert sf.format_problem("An example the model saw, again.", True, LABELS, prompt) is None
    cases = {
        "": "empty",
        "   ": "empty",
        "Here's the paraphrased version of it: fine.": "chat leftover",
        "As an AI, I enjoyed it.": "chat leftover",
        "Positive: a fine film.": "label tag",
        "A fine film. (Positive)": "label tag",
        "Sentiment: great": "label tag",
        "- a list item": "Markdown",
        "1. First point.": "Markdown",
        "**Bold** claims.": "Markdown",
        "这部电影非常好看，我很喜欢。": "outside the Latin script",
        "The plot is strange剧情 but fun.": "outside the Latin script",
    }
    for text, message in cases.items():
        assert message in (sf.format_problem(text, True, LABELS) or ""), text
    assert "cut off" in sf.format_problem(ok, False, LABELS)


def test_every_rejection_keeps_its_reason():
    real = [
        ("real text A", "A gripping thriller with a fine cast and a clever twist at the end."),
        ("real text B", "The sequel is loud, long and completely forgettable."),
    ]
    cands = [
        candidate(0, "A gripping thriller with a fine cast and a clever twist at the end."),  # exact
        candidate(1, "A gripping thriller with a great cast and a clever twist at the end."),  # ROUGE-L 0.93
        candidate(2, "Clever twist at the end, fine cast: a gripping thriller, with a.", mode="paraphrase"),
        candidate(3, "Too short."),
        candidate(4, "Lovely " * 400),
        candidate(5, "An unfinished sentence about a", finished=False),
        candidate(6, "A heartfelt story told with real care and wit.", "Negative"),  # the LLM disagrees
        candidate(7, "A tender, beautifully acted drama about two sisters."),  # the classifier disagrees
        candidate(8, "A brilliant, funny and moving picture for all ages."),  # accepted
        candidate(9, "A BRILLIANT, funny and moving  picture for all ages."),  # a copy of 8
        candidate(10, "Whatever.", "Mixed"),
    ]
    clf = sf.RealClassifier(fixed_probs({cands[7]["text"]: [0.3, 0.6, 0.1]}), dict.fromkeys(LABELS, 0.5))
    out = sf.run_filters(
        cands, real, LABELS, bag_embed, llm_probs=fixed_probs({}), classifier=clf, config=sf.FilterConfig(max_words=100)
    )
    verdict = {o["id"]: (o["filter"]["status"], o["filter"]["reason"]) for o in out}
    assert verdict == {
        "c0": ("rejected", "duplicate-exact"),
        "c1": ("rejected", "duplicate-rouge"),
        "c2": ("rejected", "duplicate-embedding"),
        "c3": ("rejected", "length"),
        "c4": ("rejected", "length"),
        "c5": ("rejected", "format"),
        "c6": ("rejected", "label-llm"),
        "c7": ("rejected", "label-classifier"),
        "c8": ("accepted", None),
        "c9": ("rejected", "duplicate-exact"),
        "c10": ("rejected", "format"),
    }
    details = {o["id"]: o["filter"]["detail"] for o in out}
    assert "real text A" in details["c1"] and "ROUGE-L 0.9" in details["c1"]
    assert "accepted candidate c8" in details["c9"]
    assert "its choice: Positive" in details["c6"] and "0.05 < 0.50" in details["c6"]
    scores = {o["id"]: o["filter"]["scores"] for o in out}
    assert scores["c8"]["llm_p_intended"] == 0.9 and scores["c8"]["classifier_p_intended"] == 0.9
    assert scores["c8"]["rouge_l_max"] < 0.7 and len(scores["c8"]["llm_probs"]) == 3


def test_thresholds_move_the_verdicts():
    real = [("r", "A gripping thriller with a fine cast and a clever twist at the end.")]
    near = candidate(0, "A gripping thriller with a great cast and a clever twist at the end.")
    loose = sf.FilterConfig(rouge_threshold=0.95, cosine_threshold=0.99)
    assert sf.run_filters([near], real, LABELS, bag_embed, config=loose)[0]["filter"]["status"] == "accepted"
    unsure = fixed_probs({near["text"]: [0.45, 0.3, 0.25]})
    with pytest.raises(ValueError, match="between 0 and 1"):
        sf.FilterConfig(rouge_threshold=1.5).check()
    for threshold, status in ((0.5, "rejected"), (0.4, "accepted")):
        config = sf.FilterConfig(rouge_threshold=0.95, cosine_threshold=0.99, llm_threshold=threshold)
        assert (
            sf.run_filters([near], real, LABELS, bag_embed, llm_probs=unsure, config=config)[0]["filter"]["status"]
            == status
        )


def test_pruned_rouge_finds_the_same_maximum_as_brute_force():
    rng = np.random.default_rng(0)
    vocab = "the a film movie plot cast funny dull story long short great bad twist end good slow".split()
    pool_texts = [list(rng.choice(vocab, rng.integers(4, 15))) for _ in range(60)]
    queries = []
    for _ in range(40):  # pool texts with a few words replaced: some near copies, some not
        words = list(pool_texts[rng.integers(60)])
        for _ in range(rng.integers(0, 6)):
            words[rng.integers(len(words))] = str(rng.choice(vocab))
        queries.append(" ".join(words))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool = sf._Pool()
    for i, words in enumerate(pool_texts):
        pool.add(f"r{i}", " ".join(words), np.zeros(1))
    config = sf.FilterConfig(rouge_threshold=0.7, cosine_threshold=2.0)
    outcomes = []
    for text in queries:
        if sf.golds.normalise(text) in pool.keys:
            continue  # an exact copy is caught before ROUGE
        brute = max(scorer.score(" ".join(w), text)["rougeL"].fmeasure for w in pool_texts)
        reason, _, scores = pool.duplicate(text, np.zeros(1), config)
        assert (reason == "duplicate-rouge") == (brute >= 0.7)
        if brute >= 0.7:
            assert scores["rouge_l_max"] == pytest.approx(brute, abs=1e-4)
        outcomes.append(brute >= 0.7)
    assert 5 <= sum(outcomes) <= len(outcomes) - 5  # both sides of the threshold were tried


def test_reference_texts_include_gold_and_guideline_examples():
    from backend import guidelines

    named = dict((t, n) for n, t in sf.reference_texts(["Some real text."], guidelines=guidelines.load()))
    assert named["Some real text."].startswith("real text")
    assert any(n.startswith("gold item") for n in named.values())
    assert named["I loved every minute of it."] == "guidelines example 1"


def test_real_classifier_thresholds_come_from_held_out_real_texts():
    clf = sf.real_classifier(REAL["text"], REAL["label"], LABELS, bag_embed, quantile=0.1)
    probs = clf.probs(["A warm, funny film number 9 that I would happily watch again."])
    assert probs.shape == (1, 3) and probs[0].argmax() == 0
    assert set(clf.thresholds) == set(LABELS) and all(0 < t < 1 for t in clf.thresholds.values())
    stricter = sf.real_classifier(REAL["text"], REAL["label"], LABELS, bag_embed, quantile=0.9)
    assert all(stricter.thresholds[label] >= clf.thresholds[label] for label in LABELS)
    assert stricter.thresholds["Positive"] > clf.thresholds["Positive"]
    assert sf.real_classifier(["One."], ["Positive"], LABELS, bag_embed) is None


# ---------------------------------------------------------------- reports


def test_diversity_by_hand():
    d = sr.diversity(["the cat sat", "the cat ran"])
    # 6 tokens, 4 distinct; bigrams (the cat) x2, (cat sat), (cat ran): 3 distinct of 4.
    assert d == {
        "n": 2,
        "tokens_per_example": 3.0,
        "distinct_1": 4 / 6,
        "distinct_2": 3 / 4,
        "unique_bigrams_per_example": 1.5,
    }
    a, b = sr.matched_diversity(["x y z"] * 10, ["x y", "y z"], draws=5)
    assert a["n"] == b["n"] == 2 and a["distinct_2"] == 0.5 and b["distinct_2"] == 1.0


def filtered(i, text, label, status="accepted", reason=None, mode="minority"):
    return {
        "id": f"s{i}",
        "text": text,
        "intended_label": label,
        "mode": mode,
        "provenance": {"model": "tiny"},
        "filter": {"status": status, "reason": reason},
    }


def test_intrinsic_report_counts_outcomes_and_balance():
    items = [
        filtered(0, "A farmer finds a map.", "Neutral"),
        filtered(1, "Great.", "Positive", "rejected", "length"),
        filtered(2, "Lovely film.", "Positive", "rejected", "label-llm", mode="style"),
    ]
    report = sr.intrinsic(REAL, items, LABELS)
    assert report["outcomes"]["accepted"] == 1 and report["outcomes"]["length"] == 1
    assert report["outcomes"]["label-llm"] == 1 and sum(report["outcomes"].values()) == 3
    assert report["label_balance"]["accepted"] == {"Positive": 0, "Negative": 0, "Neutral": 1}
    assert report["by_mode"] == {
        "minority": {"candidates": 2, "accepted": 1},
        "style": {"candidates": 1, "accepted": 0},
    }
    assert [row["set"] for row in report["diversity"]] == ["all", *LABELS]
    assert "| Neutral | 2 | 0 | 1 |" not in sr.markdown({"intrinsic": report})  # real 2, candidates 1
    assert "| Neutral | 2 | 1 | 1 |" in sr.markdown({"intrinsic": report})


def test_extrinsic_trains_with_and_without_on_the_test_split(monkeypatch):
    from backend.bench import evaluation

    test, calibration = evaluation.splits()
    small_test = pd.concat([test[test["label"] == label].head(15) for label in LABELS])
    monkeypatch.setattr(evaluation, "splits", lambda: (small_test, calibration))
    real = syn.corpus_sample(40, seed=0)
    neutral = small_test[small_test["label"] == "Neutral"]["text"].tolist()
    extra = syn.corpus_sample(200, seed=9)
    accepted = [filtered(i, t, "Neutral") for i, t in enumerate(extra[extra["label"] == "Neutral"]["text"])]
    accepted.append(filtered(99, neutral[0], "Neutral"))  # a test text: never trained on
    out = sr.extrinsic(real, accepted, LABELS, bag_embed, None, kinds=["classifier"], resamples=1)
    assert out["minority"] == "Neutral" and out["synthetic_added"] == len(accepted) - 1
    assert [(r["sample"], r["synthetic"]) for r in out["runs"]] == [
        ("given", False),
        ("given", True),
        ("resample 1", False),
        ("resample 1", True),
    ]
    assert out["runs"][1]["train_size"] == len(real) + len(accepted) - 1
    assert set(out["summary"]["classifier"]) == {"macro_f1", "Neutral_f1"}
    with pytest.raises(syn.SyntheticError, match="in the evaluation's test split"):
        sr.extrinsic(small_test, accepted, LABELS, bag_embed, None, resamples=0)
    with pytest.raises(syn.SyntheticError, match="blend needs"):
        sr.extrinsic(real, accepted, LABELS, bag_embed, None, kinds=["blend"], resamples=0)


def choice(label):
    return [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}]


def export_task(i, intended, answers, synthetic=True, mode="minority"):
    data = {"text": f"text {i}"}
    if synthetic:
        data.update(synthetic=True, provenance={"intended_label": intended, "mode": mode})
    annotations = [
        {"id": 100 * i + k, "completed_by": k, "was_cancelled": a is None, "result": choice(a) if a else []}
        for k, a in enumerate(answers, 1)
    ]
    return {"id": i, "data": data, "annotations": annotations}


def test_review_rates_from_an_export():
    tasks = [
        export_task(1, "Neutral", ["Neutral"]),
        export_task(2, "Neutral", ["Positive", "Positive"]),
        export_task(3, "Negative", [None]),
        export_task(4, "Negative", ["Negative"], mode="style"),
        export_task(5, "Positive", []),
        export_task(6, "Positive", ["Negative"], synthetic=False),
    ]
    review = sr.review_rates(tasks, SCHEMA)
    assert review["synthetic_tasks"] == 5
    every = review["groups"]["all"]
    assert (every["accepted"], every["edited"], every["rejected"], every["unreviewed"]) == (2, 1, 1, 1)
    assert every["accepted_rate"] == 0.5 and every["rejected_rate"] == 0.25
    assert review["groups"]["intended: Neutral"]["edited_rate"] == 0.5
    assert review["groups"]["mode: style"]["accepted"] == 1
    assert "| all | 2 (50%) | 1 (25%) | 1 (25%) | 1 |" in sr.markdown({"review": review})
    with pytest.raises(syn.SyntheticError, match="not a Label Studio JSON export"):
        sr.review_rates({"not": "a list"}, SCHEMA)


def test_plot_writes_a_png(tmp_path):
    runs = [
        {
            "sample": s,
            "kind": "classifier",
            "synthetic": w,
            "train_size": 1,
            "macro_f1": 0.5 + 0.1 * w,
            "per_label_f1": {"Positive": 0.7, "Negative": 0.6, "Neutral": 0.2 + 0.3 * w},
        }
        for s in ("given", "resample 1")
        for w in (False, True)
    ]
    report = {
        "intrinsic": {"outcomes": {"accepted": 3, "format": 2, "label-llm": 0}},
        "extrinsic": {"minority": "Neutral", "test_size": 600, "runs": runs, "summary": {"classifier": {}}},
    }
    path = sr.plot(report, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- Label Studio tasks, and where synthetic is left out


def test_label_studio_tasks_carry_provenance_and_the_intended_label():
    items = [
        {
            **filtered(0, "A farmer finds a map.", "Neutral"),
            "provenance": {"model": "qwen", "mode": "minority", "params": {"seed": 3}, "prompt": []},
        },
        filtered(1, "Nope.", "Positive", "rejected", "length"),
    ]
    items[0]["filter"]["scores"] = {"llm_p_intended": 0.8, "rouge_l_max": 0.2, "llm_probs": [0.1, 0.1, 0.8]}
    tasks = syn.label_studio_tasks(items, SCHEMA)
    assert len(tasks) == 1
    data, prediction = tasks[0]["data"], tasks[0]["predictions"][0]
    assert data["text"] == "A farmer finds a map." and data["synthetic"] is True
    assert data["provenance"]["model"] == "qwen" and data["provenance"]["intended_label"] == "Neutral"
    assert data["provenance"]["params"] == {"seed": 3} and data["provenance"]["filter"] == {
        "llm_p_intended": 0.8,
        "rouge_l_max": 0.2,
    }
    assert prediction == {"model_version": syn.PREDICTION_VERSION, "result": choice("Neutral"), "score": 0.8}
    from backend.labelstudio.task_files import HASH_KEY, task_hash

    assert data[HASH_KEY] == task_hash(data)
    with pytest.raises(syn.SyntheticError, match="not one of the project's labels"):
        syn.label_studio_tasks([filtered(2, "x", "Mixed")], SCHEMA)


def test_synthetic_tasks_are_left_out_of_agreement_and_drift(tmp_path):
    gold_item = gold.default_gold().items[0]
    synthetic = syn.label_studio_tasks([filtered(0, gold_item.text, gold_item.label)], SCHEMA)[0]
    export = [
        {
            "id": 1,
            "data": synthetic["data"],
            "annotations": [
                {"id": 11, "completed_by": 1, "result": choice("Negative"), "created_at": "2026-01-01T00:00:00Z"},
                {"id": 12, "completed_by": 2, "result": choice("Positive"), "created_at": "2026-01-01T00:00:00Z"},
            ],
        },
        {
            "id": 2,
            "data": {"text": "A real review."},
            "annotations": [
                {"id": 21, "completed_by": 1, "result": choice("Positive"), "created_at": "2026-01-01T00:00:00Z"},
                {"id": 22, "completed_by": 2, "result": choice("Positive"), "created_at": "2026-01-01T00:00:00Z"},
            ],
        },
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    dataset = exports.load_export(path, labels=list(LABELS))
    assert [item.task_id for item in dataset.items] == [2]
    assert dataset.counts["synthetic_tasks_excluded"] == 1
    report = drift.drift_report(path, gold.default_gold())
    assert report["counts"]["synthetic_tasks_excluded"] == 1 and report["counts"].get("gold_answers_used", 0) == 0
    assert syn.load_real(path).to_dict("records") == [{"text": "A real review.", "label": "Positive"}]


# ---------------------------------------------------------------- command line


def run(*args, timeout=120):
    return warm.run([*SCRIPT, *args], cwd=ROOT, timeout=timeout)


def test_help_explains_every_command():
    done = run("--help")
    assert done.returncode == 0
    for name in ("sample", "generate", "filter", "report", "import", "review"):
        assert name in done.stdout
    assert "ROUGE-L" in run("filter", "--help").stdout
    assert "resumable" in run("generate", "--help").stdout.lower() or "continue" in run("generate", "--help").stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--real", "missing.csv", "--out", "x.jsonl"], "cannot read missing.csv"),
        (["generate", "--real", "{real}", "--out", "x.jsonl", "--mix", "poems=3"], "bad mix entry"),
        (["generate", "--real", "{real}", "--out", "x.jsonl", "--temperature", "0"], "temperature must be"),
        (["filter", "missing.jsonl", "--real", "{real}", "--out", "f.jsonl"], "holds no candidates"),
        (["report", "{candidates}", "--real", "{real}"], "without a filter verdict"),
        (["report", "{filtered}", "--real", "{real}", "--kinds", "forest"], "--kinds"),
        (["review", "{real}"], "not a Label Studio JSON export"),
        (["review", "{candidates}"], "not a Label Studio JSON export"),
        (["sample", "--size", "0", "--out", "s.csv"], "at least 1"),
        (
            ["filter", "{candidates}", "--real", "{real}", "--out", "f.jsonl", "--rouge", "2", "--no-llm"],
            "between 0 and 1",
        ),
        (["generate", "--real"], "expected one argument"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    real = tmp_path / "real.csv"
    REAL.to_csv(real, index=False)
    candidates = tmp_path / "c.jsonl"
    candidates.write_text(json.dumps(filtered(0, "A text.", "Positive") | {"filter": None}) + "\n")
    good = tmp_path / "f.jsonl"
    good.write_text(json.dumps(filtered(0, "A text.", "Positive")) + "\n")
    args = [a.format(real=real, candidates=candidates, filtered=good) for a in args]
    done = warm.run([*SCRIPT, *args], cwd=tmp_path, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_sample_then_intrinsic_report_from_the_command_line(tmp_path):
    assert run("sample", "--size", "30", "--out", tmp_path / "real.csv").returncode == 0
    real = pd.read_csv(tmp_path / "real.csv")
    assert len(real) == 30 and set(real.columns) == {"text", "label"}
    items = [
        filtered(0, "A farmer finds a map that leads to his missing brother.", "Neutral"),
        filtered(1, "Nope.", "Positive", "rejected", "length"),
    ]
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    done = run(
        "report", tmp_path / "f.jsonl", "--real", tmp_path / "real.csv", "--no-extrinsic", "--json", tmp_path / "r.json"
    )
    assert done.returncode == 0, done.stderr
    assert "| length | 1 | 50% |" in done.stdout
    assert json.loads((tmp_path / "r.json").read_text())["intrinsic"]["outcomes"]["accepted"] == 1
