"""--data FILE / --corpus NAME with --config and --guidelines on simulate_finish, bench_label_issues, benchmark and
calibrate: a bad file is one `error:` line and exit 2 before any model loads, the Source that reaches the loader
holds the file's rows, the config's labels and the guidelines, and small real runs on the tiny model (simulate_finish,
calibrate) finish on a team's JSONL."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import warm

from backend.bench import simulation
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ("simulate_finish", "bench_label_issues", "benchmark", "calibrate")
LABELS = ("Positive", "Negative", "Neutral")
WORDS = {
    "Positive": "wonderful, moving and funny",
    "Negative": "dull, clumsy and far too long",
    "Neutral": "a story about a family that moves to a new town",
}


def team_file(tmp_path: Path, n: int = 120, name: str = "team.jsonl", label=None) -> Path:
    """n unique texts in JSONL, labels in lower case (matched to the config's spelling), cycling over LABELS."""
    path = tmp_path / name
    rows = []
    for i in range(n):
        true = LABELS[i % 3]
        rows.append({"text": f"Film {i}: {WORDS[true]}.", "label": (label or true).lower()})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def team_setup(tmp_path: Path) -> tuple[Path, Path]:
    """The project's config and guidelines, copied under names of the team's own."""
    config, guidelines = tmp_path / "team.xml", tmp_path / "team_guidelines.md"
    shutil.copy(DEMO_CONFIG, config)
    shutil.copy(DEMO_GUIDELINES, guidelines)
    return config, guidelines


def run(name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return warm.run([*warm.labelloop(name.replace("_", "-")), *args], timeout=timeout, cwd=ROOT)


def out_args(name: str, tmp_path: Path) -> list[str]:
    return ["--out", str(tmp_path / ("out.json" if name in ("benchmark", "calibrate") else "out"))]


def one_line_error(done: subprocess.CompletedProcess, says: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- bad data: one line, exit 2


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_names_the_data_options(name):
    done = run(name, "--help")
    assert done.returncode == 0, done.stderr
    for flag in ("--data", "--corpus", "--config", "--guidelines"):
        assert flag in done.stdout, (name, flag)


@pytest.mark.parametrize("name", SCRIPTS)
def test_missing_file_is_one_line(name, tmp_path):
    one_line_error(run(name, "--data", str(tmp_path / "nowhere.csv"), *out_args(name, tmp_path)), "no such file")


@pytest.mark.parametrize("name", SCRIPTS)
def test_unknown_label_is_one_line(name, tmp_path):
    data = team_file(tmp_path, n=20, label="Great")
    config, guidelines = team_setup(tmp_path)
    done = run(
        name, "--data", str(data), "--config", str(config), "--guidelines", str(guidelines), *out_args(name, tmp_path)
    )
    one_line_error(done, "unknown label(s) 'great'")


@pytest.mark.parametrize("name", SCRIPTS)
def test_unknown_corpus_and_missing_guidelines(name, tmp_path):
    one_line_error(run(name, "--corpus", "imdb", *out_args(name, tmp_path)), "unknown corpus 'imdb'")
    done = run(
        name, "--data", str(team_file(tmp_path)), "--guidelines", str(tmp_path / "none.md"), *out_args(name, tmp_path)
    )
    one_line_error(done, "--guidelines")


@pytest.mark.parametrize("name", ["simulate_finish", "bench_label_issues", "benchmark"])
def test_config_without_data(name, tmp_path):
    one_line_error(run(name, "--config", str(DEMO_CONFIG), *out_args(name, tmp_path)), "go with --data")


def test_too_small_a_file_says_which_sizes(tmp_path):
    done = run(
        "simulate_finish", "--data", str(team_file(tmp_path, n=40)), "--pool", "100", "--out", str(tmp_path / "out")
    )
    one_line_error(done, "fewer than --pool 100")


def test_calibrate_data_and_sample_are_exclusive(tmp_path):
    done = run(
        "calibrate",
        "--data",
        str(team_file(tmp_path)),
        "--sample",
        str(tmp_path / "s.jsonl"),
        "--out",
        str(tmp_path / "c.json"),
    )
    one_line_error(done, "not both")


# ---------------------------------------------------------------- the Source reaching the loader


def check_source(source, data: Path, config: Path, guidelines: Path, pool: int, test: int) -> None:
    texts = {json.loads(line)["text"] for line in data.read_text().splitlines()}
    assert source is not None and source.name == data.stem
    assert len(source.pool) == pool and len(source.test) == test
    assert set(source.pool["text"]) <= texts and set(source.test["text"]) <= texts
    assert not set(source.pool["text"]) & set(source.test["text"])
    assert set(source.pool["label"]) == set(LABELS)  # the config's spelling, not the file's lower case
    assert source.config == config.read_text() and source.guidelines == guidelines


def test_simulate_finish_passes_the_source(tmp_path, monkeypatch):
    from support.finish_simulation import finishing_inputs

    from backend.bench import finish_simulation
    from backend.cli import simulate_finish

    data = team_file(tmp_path)
    config, guidelines = team_setup(tmp_path)
    seen = {}

    def fake_load(pool, test_size, cache_dir, judge_variants, progress=True, source=None):
        seen.update(pool=pool, test=test_size, source=source)
        return finishing_inputs(n_pool=pool)

    monkeypatch.setattr(simulation, "load_inputs", fake_load)
    code = simulate_finish.main(
        [
            "--data",
            str(data),
            "--config",
            str(config),
            "--guidelines",
            str(guidelines),
            "--pool",
            "80",
            "--seeds",
            "1",
            "--target",
            "0.9",
            "--seed-size",
            "40",
            "--strategies",
            "random",
            "--no-baseline",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert code == 0
    assert seen["pool"] == 80 and seen["test"] == finish_simulation.LOADER_TEST_SIZE
    check_source(seen["source"], data, config, guidelines, 80, finish_simulation.LOADER_TEST_SIZE)


def test_bench_label_issues_passes_the_source(tmp_path, monkeypatch):
    from support.simulation import synthetic_inputs

    from backend.cli import bench_label_issues

    data = team_file(tmp_path)
    config, guidelines = team_setup(tmp_path)
    seen = {}

    def fake_load(pool, test_size, cache_dir, judge_variants, progress=True, source=None):
        seen.update(pool=pool, test=test_size, source=source)
        return synthetic_inputs(n_pool=pool, n_test=test_size)

    monkeypatch.setattr(simulation, "load_inputs", fake_load)
    code = bench_label_issues.main(
        [
            "--data",
            str(data),
            "--config",
            str(config),
            "--guidelines",
            str(guidelines),
            "--pool",
            "80",
            "--labels",
            "60",
            "--test",
            "30",
            "--seeds",
            "1",
            "--kind",
            "classifier",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert code == 0
    assert seen["pool"] == 80 and seen["test"] == 30
    check_source(seen["source"], data, config, guidelines, 80, 30)
    assert json.loads((tmp_path / "out" / "results.json").read_text())["config"]["labels"] == 60


def test_benchmark_passes_the_source_and_serves_its_guidelines(tmp_path, monkeypatch):
    from backend.cli import benchmark

    data = team_file(tmp_path)
    config, guidelines = team_setup(tmp_path)
    seen = {}

    class Stop(Exception):
        pass

    def fake_phase(model, test, config_xml, parsed, args, free_text, source=None):
        seen.update(model=model, test=test, config=config_xml, labels=parsed.labels, free_text=free_text, source=source)
        raise Stop

    monkeypatch.setattr(benchmark, "model_phase", fake_phase)
    with pytest.raises(Stop):
        benchmark.main(
            [
                "--models",
                "embedded",
                "--data",
                str(data),
                "--config",
                str(config),
                "--guidelines",
                str(guidelines),
                "--pool",
                "60",
                "--test-size",
                "40",
                "--out",
                str(tmp_path / "b.json"),
            ]
        )
    check_source(seen["source"], data, config, guidelines, 60, 40)
    assert seen["test"]["text"].tolist() == seen["source"].test["text"].tolist()
    assert seen["config"] == config.read_text() and seen["labels"] == LABELS

    # The backend under test is started with the set's guidelines and asked about the config's text field.
    env_seen = {}

    def fake_serving(env, log_path, port=None, timeout=120.0):
        env_seen.update(env)
        raise RuntimeError("stopped here")

    monkeypatch.setattr(benchmark.processes, "serving", fake_serving)
    with pytest.raises(SystemExit, match="stopped here"):
        benchmark.http_phase(
            ["a text"],
            config.read_text(),
            9199,
            batch=10,
            log_path=tmp_path / "b.log",
            model="embedded",
            guidelines=guidelines,
        )
    assert env_seen["GUIDELINES"] == str(guidelines.resolve()) and env_seen["LLM_MODEL"] == "embedded"


def test_benchmark_tables_without_polar_labels_or_large_pool(capsys):
    from backend.cli import benchmark

    report = {
        "accuracy": 0.5,
        "macro_f1": 0.5,
        "kappa": 0.1,
        "per_label_f1": {"A": 0.5, "B": 0.5},
        "polar_accuracy": None,
    }
    model = {
        "model": "embedded",
        "http": {"reviews_per_s": 10.0, "peak_rss_mb": 900.0},
        "efficiency": {
            "in_process_reviews_per_s": 12.0,
            "reviews_per_s": 40.0,
            "served_fraction": 0.25,
            "matmul_gflops": 100.0,
            "gflop_per_token": 1.0,
            "mean_tokens_per_review": 30.0,
            "time_shares": dict.fromkeys(
                ("linear", "lm_head", "attention", "other_kernels", "python", "tokenising"), 0.1
            ),
        },
        "accuracy": {"none": report},
        "learning_curve": {"zero_shot": 0.4, "macro_f1_at": {"100": 0.6}},
    }
    benchmark.print_tables({"data": "team", "test_size": 40, "label_counts": {"A": 20, "B": 20}, "models": [model]})
    printed = capsys.readouterr().out
    assert "40 items of team" in printed and "0.600" in printed


# ---------------------------------------------------------------- real runs on the tiny model


def tiny_loader(monkeypatch, seen: dict):
    """load_inputs as the command calls it, on the tiny model and hash-seeded embeddings."""
    from helpers import tiny_predictor
    from support.simulation import FakeEmbedder

    real = simulation.load_inputs

    def load(pool, test_size, cache_dir, judge_variants, progress=True, source=None):
        seen["source"] = source
        predictor = tiny_predictor(guidelines_path=source.guidelines if source is not None else None)
        return real(
            pool,
            test_size,
            cache_dir,
            judge_variants,
            predictor=predictor,
            embedder=FakeEmbedder(),
            progress=False,
            source=source,
        )

    monkeypatch.setattr(simulation, "load_inputs", load)


def test_simulate_finish_runs_on_a_team_file(tmp_path, monkeypatch):
    from backend.bench import finish_simulation
    from backend.cli import simulate_finish

    data = team_file(tmp_path)
    config, guidelines = team_setup(tmp_path)
    seen: dict = {}
    tiny_loader(monkeypatch, seen)
    code = simulate_finish.main(
        [
            "--data",
            str(data),
            "--config",
            str(config),
            "--guidelines",
            str(guidelines),
            "--pool",
            "60",
            "--seeds",
            "1",
            "--target",
            "0.9",
            "--seed-size",
            "20",
            "--batch",
            "10",
            "--strategies",
            "random",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert code == 0
    check_source(seen["source"], data, config, guidelines, 60, finish_simulation.LOADER_TEST_SIZE)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["config"]["data"] == "team" and results["config"]["pool"] == 60
    assert results["config"]["labels"] == list(LABELS) and "llm_alone" in results
    block = results["strategies"]["random"]
    assert 0 <= block["human_fraction"] <= 1 and len(block["seeds"]) == 1
    assert (tmp_path / "out" / "finish.png").read_bytes()[:4] == b"\x89PNG"


def test_calibrate_fits_on_the_pool_of_a_team_file(tmp_path, monkeypatch, capsys):
    from helpers import tiny_predictor

    from backend.cli import calibrate

    data = team_file(tmp_path)
    config, guidelines = team_setup(tmp_path)
    loaded = []

    def fake_load(settings):
        loaded.append(settings)
        return tiny_predictor(calibration=settings.calibration, guidelines_path=settings.guidelines)

    monkeypatch.setattr(calibrate, "load_predictor", fake_load)
    monkeypatch.setenv("CALIBRATION_DIR", str(tmp_path / "calibration"))
    code = calibrate.main(
        ["--data", str(data), "--config", str(config), "--guidelines", str(guidelines), "--size", "45", "--test", "30"]
    )
    assert code == 0
    assert loaded[0].guidelines == guidelines and loaded[0].calibration == "none"
    # Named after the team's guidelines, where the backend looks for a file matching its prompt.
    written = tmp_path / "calibration" / "team_guidelines.tiny-qwen2.json"
    saved = json.loads(written.read_text())
    assert saved["fitted_on"] == 45 and saved["labels"] == list(LABELS)
    printed = capsys.readouterr().out
    assert "fitted on 45 examples of team (30 held out)" in printed and str(written) in printed

    # The fit reads the pool only: the same --test holds out the same items, so a larger --size adds to the pool.
    assert (
        calibrate.main(
            [
                "--data",
                str(data),
                "--config",
                str(config),
                "--guidelines",
                str(guidelines),
                "--size",
                "90",
                "--test",
                "30",
                "--out",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "c.json").read_text())["fitted_on"] == 90
