"""Simulated finishing (backend/bench/finish_simulation.py) with the packaged model; the tests without the packaged model are in tests/unit/test_finish_simulation.py."""

from __future__ import annotations

import json

import pytest
from support.finish_simulation import CONTRACT, run


@pytest.mark.real_model
def test_end_to_end_with_the_packaged_model(tmp_path):
    out = run(
        "--pool",
        "120",
        "--seeds",
        "1",
        "--seed-size",
        "60",
        "--batch",
        "20",
        "--strategies",
        "random,margin",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["config"]["pool"] == 120 and results["config"]["llm"].startswith("gguf:")
    assert results["config"]["kind"] == "llm_state" and results["config"]["llm_state_layer"] == 15
    for s in [*results["strategies"].values(), *results["llm_alone"]["strategies"].values()]:
        assert all(key in s for key in CONTRACT) and 0 <= s["human_fraction"] <= 1
        assert 0.5 < s["finished_accuracy_mean"] <= 1
    assert (tmp_path / "out" / "finish.png").stat().st_size > 10_000
