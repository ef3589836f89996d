"""`labelloop compare-strategies` with the packaged model; the tests without the packaged model are in tests/unit/test_compare_strategies.py."""

from __future__ import annotations

import pytest
from support.compare_strategies import check_outputs, run


@pytest.mark.real_model
def test_end_to_end_with_the_packaged_model(tmp_path):
    strategies = ["random", "margin", "diversity", "llm_difficult"]
    out = run(
        "--pool",
        "120",
        "--seeds",
        "2",
        "--test-size",
        "90",
        "--budget",
        "60",
        "--strategies",
        ",".join(strategies),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "out"),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = check_outputs(tmp_path / "out", strategies, ["classifier", "blend", "llm_state"], 2, [20, 40, 60])
    assert results["config"]["pool"] == 120 and results["config"]["test_size"] == 90
    assert results["config"]["llm"].startswith("gguf:")
    # the LLM alone is a real classifier here, far from chance on three classes
    assert results["llm_alone_macro_f1"] > 0.5
    assert "labels to 95%" in out.stdout
    assert {p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.npz")} == {
        "embeddings",
        "labels",
        "states",
        "judge",
    }
    assert results["config"]["llm_state_layer"] == 15  # 0.625 of the 0.5B's 24 layers
