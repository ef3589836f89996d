"""labelloop compare-strategies: --help, one-line errors with exit code 2, the files it writes (on synthetic inputs),
and one end-to-end run with the packaged model on a tiny pool."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.compare_strategies import check_outputs, run
from support.simulation import synthetic_inputs

ROOT = Path(__file__).resolve().parents[2]


def test_help():
    out = run("--help")
    assert out.returncode == 0
    for flag in (
        "--pool",
        "--seeds",
        "--strategies",
        "--out",
        "--budget",
        "--batch",
        "--seed-size",
        "--kinds",
        "--test-size",
        "--cache-dir",
    ):
        assert flag in out.stdout, flag
    assert "llm_difficult" in out.stdout and "95%" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategies", "random,bald"], "unknown strategy bald"),
        (["--kinds", "classifier,svm"], "unknown model kind svm"),
        (["--pool", "999999"], "larger than the"),
        (["--pool", "0"], "must be a positive integer"),
        (["--seeds", "-2"], "must be a positive integer"),
        (["--batch", "ten"], "is not an integer"),
        (["--pool", "100", "--budget", "200"], "exceeds the pool"),
        (["--budget", "50", "--seed-size", "60"], "exceeds the budget"),
        (["--test-size", "700"], "at most 600"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    out = run(*args, "--out", str(tmp_path / "out"), timeout=60)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.stderr
    assert "Traceback" not in out.stderr


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    out = run("--pool", "100", "--out", str(blocker / "results"), timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("error: cannot write to --out") and len(out.stderr.strip().splitlines()) == 1


def load_script():
    from backend.cli import compare_strategies

    return compare_strategies


def test_main_writes_results_and_plot(tmp_path, monkeypatch, capsys):
    """The script's whole path after the model: synthetic inputs stand in for load_inputs."""
    script = load_script()
    asked = {}

    def fake_load(pool, test_size, cache_dir, judge_variants, progress=True, source=None, calibration="auto"):
        asked.update(pool=pool, test_size=test_size, judges=list(judge_variants), source=source)
        return synthetic_inputs(n_pool=pool, n_test=test_size)

    monkeypatch.setattr(script.simulation, "load_inputs", fake_load)
    strategies = ["random", "entropy", "llm_diverse", "hybrid_llm"]
    code = script.main(
        [
            "--pool",
            "150",
            "--seeds",
            "2",
            "--budget",
            "70",
            "--batch",
            "25",
            "--seed-size",
            "20",
            "--test-size",
            "80",
            "--strategies",
            ",".join(strategies),
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 0
    assert asked == {"pool": 150, "test_size": 80, "judges": ["informative", "diverse"], "source": None}
    check_outputs(tmp_path, strategies, ["classifier", "blend", "llm_state"], 2, [20, 45, 70])
    printed = capsys.readouterr().out
    assert "labels to 95%" in printed and "hybrid_llm" in printed and "results.json" in printed
