"""`labelloop benchmark --models A,B,cascade --corpus r8`: the three side by side in one run, in the JSON shape other
tools read (http.reviews_per_s, served.macro_f1, learning_curve.macro_f1_at), with two tiny models standing in for
the packaged pair (LLM_CASCADE_MODELS)."""

from __future__ import annotations

import json

from backend.cli import benchmark
from backend.dev import tiny_model


def test_the_benchmark_measures_two_models_and_their_cascade_in_one_run(tmp_path, monkeypatch):
    pair = [str(tiny_model.save(tmp_path / f"tiny-{seed}", seed=seed)) for seed in (0, 1)]
    monkeypatch.setenv("LLM_CASCADE_MODELS", ",".join(pair))
    out = tmp_path / "benchmark.json"
    args = ["--models", f"{pair[0]},{pair[1]},cascade", "--corpus", "r8", "--test-size", "24", "--pool", "110"]
    args += ["--in-process", "8", "--free-text", "0", "--batch", "12", "--out", str(out)]
    assert benchmark.main(args) == 0
    results = json.loads(out.read_text())
    assert [m["model"] for m in results["models"]] == [*pair, "cascade"]
    for m in results["models"]:
        assert m["http"]["reviews_per_s"] > 0 and 0 <= m["served"]["macro_f1"] <= 1
        assert set(m["learning_curve"]["macro_f1_at"]) == {"100"}
    small, _, cascade = results["models"]
    assert cascade["http"]["model_version"].startswith("tiny-0+tiny-1-cascade5-"), cascade["http"]
    assert cascade["cascade"]["student"] and cascade["cascade"]["share"] == 0.05
    assert 0 < cascade["cascade"]["refined_test"] < 1
    assert list(cascade["accuracy"]) == ["cascade"] and "cascade" not in small
    assert cascade["model_version"] == cascade["cascade"]["model_version"]
