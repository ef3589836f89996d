"""Test helpers shared by tests/unit/test_compare_strategies.py and the tiers that build on it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import warm
from helpers import ROOT

SCRIPT = warm.labelloop("compare-strategies")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return warm.run([*SCRIPT, *args], timeout=timeout, cwd=ROOT)


def check_outputs(out_dir: Path, strategies: list[str], kinds: list[str], seeds: int, labels: list[int]) -> dict:
    results = json.loads((out_dir / "results.json").read_text())
    png = out_dir / "curves.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert 0 <= results["llm_alone_macro_f1"] <= 1
    assert list(results["kinds"]) == ["llm", *kinds] and results["served_kind"] == "llm_state"
    for kind, block in results["kinds"].items():
        sizes = [str(n) for n in (20, 50, 100, 200, 500, 1000) if n <= results["config"]["pool"]]
        assert list(block["macro_f1_at"]) == sizes and all(0 < v <= 1 for v in block["macro_f1_at"].values())
        if kind == "llm":
            continue
        assert 0 < block["target"] < block["full_pool_macro_f1"] <= 1
        assert list(block["strategies"]) == strategies
        for s in block["strategies"].values():
            assert s["curve"]["labels"] == labels
            assert len(s["curve"]["mean"]) == len(s["curve"]["std"]) == len(labels)
            assert len(s["auc_per_seed"]) == len(s["labels_to_target_per_seed"]) == seeds
            assert 0 <= s["auc"] <= 1
            assert set(s) >= {"auc", "labels_to_target", "ratio_to_random", "reached", "final_f1"}
    return results
