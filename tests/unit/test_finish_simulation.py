"""Simulated finishing of a dataset (backend/bench/finish_simulation.py, labelloop simulate-finish): the results.json
contract, the accounting, the stopping rule, determinism and the plot on synthetic inputs; the script's --help and
one-line errors; one end-to-end run with the packaged model (real_model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.finish_simulation import CONTRACT, finishing_inputs, run
from support.shapes import mismatches

from backend.bench import finish_simulation as fs
from backend.bench import reports, simulation
from backend.bench.finish_simulation import FinishSimulationError
from backend.bench.results import FinishResults, PoolsFile
from backend.bench.simulation import SimulationError
from backend.loop import routing

ROOT = Path(__file__).resolve().parents[2]
STOP_REASONS = {"nothing below the threshold", "budget"}


SETTINGS = dict(target=0.9, level=0.95, seed_size=40, batch=20, patience=3, evidence="all")  # the loop alone


@pytest.fixture(scope="module")
def inputs():
    return finishing_inputs()


@pytest.fixture(scope="module")
def results(inputs):
    return fs.finish(inputs, ["random", "margin"], seeds=[0, 1], progress=False, **SETTINGS)


# ------------------------------------------------------------------------------------------------ the contract


def test_contract_keys(results):
    assert mismatches(json.loads(json.dumps(results)), FinishResults) == []
    assert list(results["strategies"]) == ["random", "margin"]
    for block in (results["strategies"], results["llm_alone"]["strategies"]):
        for name, s in block.items():
            for key in CONTRACT:
                assert key in s, (name, key)
            assert len(s["seeds"]) == 2 and [seed["seed"] for seed in s["seeds"]] == [0, 1]
    cfg = results["config"]
    assert cfg["pool"] == 240 and cfg["seeds"] == [0, 1] and cfg["strategies"] == ["random", "margin"]
    assert cfg["target"] == 0.9 and cfg["kind"] == simulation.SERVED_SETUP == "llm_state"
    assert cfg["recipe"] == simulation.SETUPS["llm_state"].learner
    assert cfg["vectors"] == "states" and cfg["stopping_rule"] == fs.STOPPING_RULE and cfg["patience"] == 3
    assert cfg["evidence"] == "all"
    assert set(results["goal"]) >= {"strategy", "met", "human_fraction_max", "auto_accuracy_min"}
    assert results["goal"]["strategy"] == "margin" and results["goal"]["human_fraction_max"] == 0.45
    json.loads(json.dumps(results))  # plain JSON, no numpy scalars
    assert "seconds" in results


def test_accounting_adds_up(results, inputs):
    n = len(inputs.pool_y)
    for block in (results["strategies"], results["llm_alone"]["strategies"]):
        for s in block.values():
            for seed in s["seeds"]:
                assert 0 <= seed["human_fraction"] <= 1 and 0 <= seed["auto_fraction"] <= 1
                assert seed["human_labels"] + seed["auto_labels"] == n
                assert seed["human_labels"] == seed["labeled_in_loop"] + seed["below_at_finish"]
                assert seed["human_fraction"] == pytest.approx(seed["human_labels"] / n)
                auto = seed["auto_accuracy"]
                if seed["auto_labels"]:
                    assert 0 <= auto <= 1 and seed["threshold"] is not None
                    # people's labels are the corpus labels: the finished pool errs only where the model did
                    assert seed["finished_accuracy"] == pytest.approx(
                        (seed["human_labels"] + auto * seed["auto_labels"]) / n
                    )
                    assert seed["finished_accuracy"] >= auto
                else:
                    assert auto is None and seed["finished_accuracy"] == 1.0
                for step in seed["steps"]:
                    assert step["human"] == step["labeled"] + step["below"]
                    assert step["labeled"] + step["below"] + step["auto"] == n
                    assert step["threshold"] is not None or step["auto"] == 0
            per_seed = [seed["human_fraction"] for seed in s["seeds"]]
            assert s["human_fraction"] == pytest.approx(np.mean(per_seed)) and 0 <= s["human_fraction"] <= 1
            autos = [seed["auto_accuracy"] for seed in s["seeds"] if seed["auto_accuracy"] is not None]
            assert s["auto_accuracy_min"] == (min(autos) if autos else None)
            assert s["finished_accuracy_mean"] == pytest.approx(np.mean([x["finished_accuracy"] for x in s["seeds"]]))
            assert 0 <= s["finished_accuracy_mean"] <= 1


def test_the_model_takes_part_of_the_pool(results):
    """These inputs are easy: every strategy finishes with the model labeling a good share, accurately."""
    for s in results["strategies"].values():
        assert s["human_fraction"] < 0.8 and s["auto_accuracy_min"] >= 0.85 and s["finished_accuracy_mean"] > 0.95


def _check_stopping_rule(
    steps: list[dict], stop_reason: str, n_pool: int, patience: int, batch: int, seed_size: int, budget: int
) -> None:
    """Replay the documented rule over a run's steps: no stop condition before the last step, one at it."""
    assert [s["labeled"] for s in steps] == [min(seed_size + i * batch, budget) for i in range(len(steps))]
    best, since = None, 0
    for i, step in enumerate(steps):
        if step["threshold"] is not None or best is not None:
            if best is None or step["human"] < best:
                best, since = step["human"], 0
            else:
                since += 1
        reasons = []
        if step["below"] == 0:
            reasons.append("nothing below the threshold")
        if since >= patience and step["threshold"] is not None:
            reasons.append(f"no lower human cost for {patience} batches")
        if step["labeled"] >= budget:
            reasons.append("budget")
        if i < len(steps) - 1:
            assert not reasons, (i, reasons)
        else:
            assert reasons and reasons[0] == stop_reason


def test_stopping_rule_is_the_documented_one(results):
    n = results["config"]["pool"]
    reasons = set()
    for block in (results["strategies"], results["llm_alone"]["strategies"]):
        for s in block.values():
            for seed in s["seeds"]:
                _check_stopping_rule(seed["steps"], seed["stop_reason"], n, 3, 20, 40, n)
                reasons.add(seed["stop_reason"])
                assert seed["human_labels"] == seed["steps"][-1]["human"]  # the finish is the stopping step
    assert reasons <= STOP_REASONS | {"no lower human cost for 3 batches"}


def test_budget_stops_the_loop(inputs):
    run = fs.finish_run(
        inputs,
        "llm_state",
        "random",
        seed=0,
        target=0.99,
        level=0.99,
        seed_size=30,
        batch=20,
        patience=50,
        budget=70,
        evidence="all",
    )
    assert [s.labeled for s in run.steps] == [30, 50, 70] and run.stop_reason == "budget"
    assert len(run.order) == 70 == len(set(run.order.tolist()))
    # finishing on the budget: people label what is below the threshold (everything, when none passed)
    assert run.final.human == 70 + run.final.below


def test_no_threshold_means_people_label_everything(inputs):
    """A target no bound can reach at these supports: the loop labels on to the whole pool, all human."""
    small = finishing_inputs(n_pool=80)
    run = fs.finish_run(
        small, "llm", "margin", seed=0, target=0.999, level=0.99, seed_size=40, batch=20, evidence="all"
    )
    assert all(s.threshold is None for s in run.steps)
    assert run.final.labeled == 80 and run.final.human == 80 and run.final.auto == 0
    assert run.final.auto_accuracy is None and run.final.finished_accuracy == 1.0
    assert run.stop_reason == "nothing below the threshold"


def test_llm_alone_routes_on_its_own_probabilities(inputs):
    """The baseline never trains: a perfect, fully confident LLM lets the model take everything after the seed set."""
    perfect = finishing_inputs(n_pool=200)
    perfect.pool_llm = np.full((200, 3), 0.01)
    perfect.pool_llm[np.arange(200), perfect.pool_y] = 0.98
    run = fs.finish_run(perfect, fs.LLM_ALONE, "random", seed=3, target=0.95, seed_size=80, batch=20, evidence="all")
    assert len(run.steps) == 1 and run.stop_reason == "nothing below the threshold"
    assert run.final.human == 80 and run.final.auto == 120
    assert run.final.auto_accuracy == 1.0 and run.final.finished_accuracy == 1.0


def test_oracle_and_ceiling(results, inputs):
    """The report-only figures that read the truth: a perfect threshold's share, per step and for the whole pool."""
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.55, 0.45]])
    assert fs.most_trusted(probs, np.array([0, 0, 1, 0, 0]), 0.75) == 5  # 4 of 5 right at the bottom: 0.8
    assert fs.most_trusted(probs, np.array([0, 0, 1, 1, 1]), 0.75) == 2
    assert fs.most_trusted(probs, np.array([1, 0, 0, 0, 0]), 0.75) == 5  # 4/5 overall passes, though row 1 is wrong
    assert fs.most_trusted(probs, np.array([1, 1, 1, 0, 0]), 0.75) == 0
    n = results["config"]["pool"]
    for block in (results["strategies"], results["llm_alone"]["strategies"]):
        for s in block.values():
            assert 0 <= s["oracle_human_fraction"] <= 1
            for seed in s["seeds"]:
                for step in seed["steps"]:
                    assert 0 <= step["oracle_auto"] <= n - step["labeled"]
    assert set(results["ceiling"]) == {"llm_state", "llm"}
    for c in results["ceiling"].values():
        assert 0 <= c["auto_fraction_max"] <= 1 and c["human_fraction_floor"] == pytest.approx(
            1 - c["auto_fraction_max"]
        )
        assert 0 <= c["accuracy"] <= 1
    perfect = finishing_inputs(n_pool=100)
    perfect.pool_llm = np.eye(3)[perfect.pool_y] * 0.9 + 0.1 / 3
    assert fs.ceiling(perfect, fs.LLM_ALONE, 0.95) == {
        "accuracy": 1.0,
        "auto_fraction_max": 1.0,
        "human_fraction_floor": 0.0,
    }


def test_seed_evidence_reads_only_the_seed_set(inputs):
    """evidence "seed": the threshold comes from the random seed set's out-of-fold answers alone."""
    run = fs.finish_run(inputs, "llm_state", "margin", seed=2, target=0.9, seed_size=80, batch=20, evidence="seed")
    assert any(s.threshold is not None for s in run.steps)
    assert all(s.support <= 80 for s in run.steps)
    # the same step by hand: out-of-fold over every label, the threshold from the first 80 rows only
    labeled = run.order[: 80 + 20 * (len(run.steps) - 1)]
    pool_probs, oof = fs._model(inputs, "llm_state", labeled, 2)
    by_hand = fs.route(pool_probs, oof, labeled, inputs.pool_y, 0.9, 0.95, evidence=80)
    assert by_hand == run.final
    with pytest.raises(FinishSimulationError, match="unknown evidence 'gold'"):
        fs.finish_run(inputs, "llm_state", "margin", seed=2, evidence="gold")


def test_audit_evidence_tests_a_random_sample_of_the_proposed_region(inputs):
    """evidence "audit": the labels so far plan the region and the audit's size; people label a random sample of
    the region; the threshold that passed the fixed sequence on the sample routes the rest; the audit's labels
    are people's."""
    run = fs.finish_run(inputs, "llm_state", "margin", seed=2, target=0.8, seed_size=80, batch=20, evidence="audit")
    proposal, final = run.steps[-2], run.final
    labeled = run.order
    pool_probs, oof = fs._model(inputs, "llm_state", labeled, 2)
    assert final.audited > 0
    n_unlabeled = len(inputs.pool_y) - final.labeled
    assert final.human == final.labeled + final.audited + final.below
    assert final.auto + final.below + final.audited == n_unlabeled
    plan = routing.plan_audit(
        oof.max(axis=1),
        oof.argmax(axis=1) == inputs.pool_y[labeled],
        np.delete(pool_probs, labeled, axis=0).max(axis=1),
        0.8,
        0.95,
    )
    assert plan.size == final.audited and (final.threshold is None or final.threshold >= plan.region)
    rng = np.random.default_rng(2)
    rng.choice(len(inputs.pool_y), size=80, replace=False)  # the seed set's draw comes first
    assert (
        fs.audit(pool_probs, oof, labeled, inputs.pool_y, proposal=proposal, target=0.8, level=0.95, rng=rng) == final
    )  # replayed draws
    results = fs.finish(
        inputs,
        ["random"],
        seeds=[0, 1],
        baseline=False,
        progress=False,
        **{**SETTINGS, "target": 0.8, "evidence": "audit"},
    )
    block = results["strategies"]["random"]
    assert 0 <= block["promise_kept"] <= 1 and block["audit_labels_mean"] == np.mean(
        [seed["audited"] for seed in block["seeds"]]
    )
    kept = [seed["auto_accuracy"] is None or seed["auto_accuracy"] >= 0.8 for seed in block["seeds"]]
    assert block["promise_kept"] == np.mean(kept)


def test_sequential_evidence_labels_the_region_in_batches_until_its_test_passes(inputs):
    """evidence "sequential": the same region as the fixed audit's, its tasks labeled in random order a batch at a
    time until routing.sequential_audit stops; both audits finish the same loop, for a paired comparison."""
    run = fs.finish_run(
        inputs, "llm_state", "margin", seed=2, target=0.8, seed_size=80, batch=20, evidence="sequential"
    )
    fixed = fs.finish_run(inputs, "llm_state", "margin", seed=2, target=0.8, seed_size=80, batch=20, evidence="audit")
    assert set(run.audits) == set(fs.AUDITS) and run.final == run.audits["sequential"]
    assert run.audits == fixed.audits and fixed.final == fixed.audits["audit"]  # the same loop, every audit
    assert run.audits["ppi"].audited == run.audits["audit"].audited  # the fixed audit's sample, another bound
    final = run.final
    assert final.human == final.labeled + final.audited + final.below
    pool_probs, oof = fs._model(inputs, "llm_state", run.order, 2)
    plan = routing.plan_audit(
        oof.max(axis=1),
        oof.argmax(axis=1) == inputs.pool_y[run.order],
        np.delete(pool_probs, run.order, axis=0).max(axis=1),
        0.8,
        0.95,
    )
    assert plan.size > 0 and 0 < final.audited <= routing.SEQUENTIAL_MOST * plan.size
    assert final.threshold is None or final.threshold >= plan.region
    results = fs.finish(
        inputs,
        ["random"],
        seeds=[0, 1],
        baseline=False,
        progress=False,
        **{**SETTINGS, "target": 0.8, "evidence": "sequential"},
    )
    block = results["strategies"]["random"]
    assert set(block["audits"]) == {"audit", "sequential", "ppi"}
    sequential = block["audits"]["sequential"]
    assert sequential["human_fraction"] == block["human_fraction"]
    assert sequential["audit_labels_mean"] == block["audit_labels_mean"]
    assert sequential["promise_kept"] == block["promise_kept"]


# ------------------------------------------------------------------------------------------------ determinism


def test_same_seed_same_run(inputs):
    a = fs.finish_run(inputs, "llm_state", "margin", seed=5, **SETTINGS)
    b = fs.finish_run(inputs, "llm_state", "margin", seed=5, **SETTINGS)
    assert a.steps == b.steps and a.stop_reason == b.stop_reason
    assert np.array_equal(a.order, b.order)
    c = fs.finish_run(inputs, "llm_state", "random", seed=5, **SETTINGS)
    assert set(c.order[:40].tolist()) == set(a.order[:40].tolist())  # paired: the same seed set per seed
    d = fs.finish_run(inputs, "llm_state", "margin", seed=6, **SETTINGS)
    assert set(d.order[:40].tolist()) != set(a.order[:40].tolist())
    # the same seed set as simulation.simulate's for the same seed
    sim = simulation.simulate(inputs, "blend", "margin", seed=5, seed_size=40, batch=20, budget=40)
    assert sim.order.tolist() == a.order[:40].tolist()


def test_finish_is_deterministic(inputs, results):
    again = fs.finish(inputs, ["random", "margin"], seeds=[0, 1], progress=False, **SETTINGS)
    for r in (again, results):
        r.pop("seconds", None)
    assert json.dumps(again, sort_keys=True) == json.dumps(
        {k: v for k, v in results.items() if k != "seconds"}, sort_keys=True
    )


# ------------------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(target=1.0), "target must lie strictly between 0 and 1"),
        (dict(level=0.0), "level must lie strictly between 0 and 1"),
        (dict(budget=500), "exceeds the pool"),
        (dict(seed_size=60, budget=50), "exceeds the budget"),
        (dict(batch=0), "batch must be a positive integer"),
        (dict(patience=0), "patience must be a positive integer"),
    ],
)
def test_bad_settings(inputs, kwargs, message):
    with pytest.raises(FinishSimulationError, match=message):
        fs.finish_run(inputs, "llm_state", "random", seed=0, **kwargs)


def test_bad_names(inputs):
    with pytest.raises(FinishSimulationError, match="unknown model kind 'svm'"):
        fs.finish(inputs, ["random"], setup="svm", progress=False)
    with pytest.raises(SimulationError, match="unknown strategy bald"):
        fs.finish(inputs, ["random", "bald"], progress=False)
    with pytest.raises(FinishSimulationError, match="no seed given"):
        fs.finish(inputs, ["random"], seeds=[], progress=False)
    no_judges = finishing_inputs(n_pool=100)
    no_judges.judged = {}
    with pytest.raises(FinishSimulationError, match="needs the LLM judge"):
        fs.finish_run(no_judges, "llm_state", "llm_difficult", seed=0)


def test_goal_verdicts():
    good = {"margin": {"human_fraction": 0.4, "auto_accuracy_min": 0.96}}
    assert fs.goal(good, 0.95)["met"] is True
    assert fs.goal({"margin": {"human_fraction": 0.5, "auto_accuracy_min": 0.96}}, 0.95)["met"] is False
    assert fs.goal({"margin": {"human_fraction": 0.3, "auto_accuracy_min": 0.94}}, 0.95)["met"] is False
    assert fs.goal({"margin": {"human_fraction": 0.3, "auto_accuracy_min": None}}, 0.95)["met"] is False
    assert fs.goal({"random": {"human_fraction": 0.3, "auto_accuracy_min": 0.99}}, 0.95)["met"] is None


# ------------------------------------------------------------------------------------------------ report


def test_plot_and_table(results, tmp_path):
    path = tmp_path / "finish.png"
    reports.finish_plot(results, path)
    assert path.stat().st_size > 10_000 and path.read_bytes()[:4] == b"\x89PNG"
    text = reports.finish_table(results)
    assert "random" in text and "margin" in text and "LLM alone" in text and "goal (margin, llm_state)" in text


# ------------------------------------------------------------------------------------------------ the script


def load_script():
    from backend.cli import simulate_finish

    return simulate_finish


def test_help():
    out = run("--help")
    assert out.returncode == 0
    for flag in (
        "--pool",
        "--seeds",
        "--target",
        "--level",
        "--strategies",
        "--kind",
        "--seed-size",
        "--batch",
        "--patience",
        "--budget",
        "--evidence",
        "--no-baseline",
        "--cache-dir",
        "--out",
    ):
        assert flag in out.stdout, flag
    assert "results.json" in out.stdout and "llm_state" in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--strategies", "random,bald"], "unknown strategy bald"),
        (["--kind", "svm"], "unknown model kind 'svm'"),
        (["--pool", "999999"], "larger than the"),
        (["--pool", "0"], "must be a positive integer"),
        (["--seeds", "-2"], "must be a positive integer"),
        (["--batch", "ten"], "is not an integer"),
        (["--target", "1.2"], "strictly between 0 and 1"),
        (["--target", "high"], "is not a number"),
        (["--level", "0"], "strictly between 0 and 1"),
        (["--evidence", "gold"], "invalid choice: 'gold'"),
        (["--pool", "100", "--budget", "200"], "exceeds the pool"),
        (["--budget", "50", "--seed-size", "60"], "exceeds the budget"),
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


def test_main_writes_results_and_plot(tmp_path, monkeypatch, capsys):
    """The script's whole path after the model: synthetic inputs stand in for load_inputs."""
    script = load_script()
    asked = {}

    def fake_load(pool, test_size, cache_dir, judge_variants, progress=True, source=None):
        asked.update(pool=pool, test_size=test_size, judges=list(judge_variants), source=source)
        return finishing_inputs(n_pool=pool)

    monkeypatch.setattr(script.simulation, "load_inputs", fake_load)
    code = script.main(
        [
            "--pool",
            "150",
            "--seeds",
            "2",
            "--target",
            "0.9",
            "--seed-size",
            "40",
            "--batch",
            "25",
            "--strategies",
            "random,margin,llm_difficult",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 0
    assert asked == {"pool": 150, "test_size": fs.LOADER_TEST_SIZE, "judges": ["difficult"], "source": None}
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["strategies"]) == ["random", "margin", "llm_difficult"]
    for s in results["strategies"].values():
        assert all(key in s for key in CONTRACT) and len(s["seeds"]) == 2
    assert results["config"]["pool"] == 150 and results["config"]["batch"] == 25 and "wall_seconds" in results
    assert "llm_alone" in results
    pngs = list(tmp_path.glob("*.png"))
    assert [p.name for p in pngs] == ["finish.png"] and pngs[0].read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "human frac" in printed and "results.json" in printed and "goal" in printed


def test_main_without_baseline(tmp_path, monkeypatch):
    script = load_script()
    monkeypatch.setattr(script.simulation, "load_inputs", lambda pool, *a, **k: finishing_inputs(n_pool=pool))
    assert (
        script.main(
            [
                "--pool",
                "120",
                "--seeds",
                "1",
                "--target",
                "0.9",
                "--seed-size",
                "40",
                "--strategies",
                "margin",
                "--no-baseline",
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert "llm_alone" not in results and list(results["strategies"]) == ["margin"]


def test_batch_grows_with_the_pool_past_five_thousand():
    assert [fs.batch_for(n) for n in (1000, 3000, 5000, 10_000, 30_000)] == [50, 50, 50, 100, 300]


def test_pools_run_each_pool_and_plot_the_human_fraction_against_pool_size(tmp_path, monkeypatch, capsys):
    script = load_script()
    asked = []

    def fake_load(pool, test_size, cache_dir, judge_variants, progress=True, source=None):
        asked.append(pool)
        return finishing_inputs(n_pool=pool)

    monkeypatch.setattr(script.simulation, "load_inputs", fake_load)
    argv = ["--pools", "240,120", "--seeds", "2", "--target", "0.9", "--seed-size", "40", "--strategies", "random"]
    assert script.main([*argv, "--no-baseline", "--out", str(tmp_path), "--quiet"]) == 0
    assert asked == [120, 240]
    saved = json.loads((tmp_path / "pools.json").read_text())
    assert mismatches(saved, PoolsFile) == []
    assert [(r["pool"], r["strategy"], r["batch"], r["seeds"]) for r in saved["rows"]] == [
        (120, "random", 50, 2),
        (240, "random", 50, 2),
    ]
    for row in saved["rows"]:
        one = saved["pools"][str(row["pool"])]["strategies"]["random"]
        assert row["human_fraction"] == one["human_fraction"] and row["promise_kept"] == one["promise_kept"]
        assert row["audit_labels"] == one["audit_labels_mean"]
        loop = np.mean([seed["labeled_in_loop"] for seed in one["seeds"]]) / row["pool"]
        assert row["loop_fraction"] == pytest.approx(loop)
        assert (tmp_path / f"pool-{row['pool']}" / "results.json").is_file()
    assert (tmp_path / "finish_pools.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "oracle" in printed and "pools.json" in printed


@pytest.mark.parametrize("value", ["", ",", "10,-3", "abc"])
def test_pools_refuse_what_is_not_a_list_of_sizes(value, capsys):
    with pytest.raises(SystemExit) as exit:
        load_script().main(["--pools", value])
    assert exit.value.code == 2 and "--pools" in capsys.readouterr().err


def test_the_command_audits_with_the_evidence_that_kept_the_promise_and_left_people_least():
    """docs/learning.md, Cheaper evidence: ppi left people less in every pool and strategy measured, the promise
    kept in every run; each audit it is compared with is one registered in AUDITS."""
    from backend.cli import simulate_finish

    assert simulate_finish.parse_args([]).evidence == "ppi"
    measured = json.loads((ROOT / "docs" / "finish_audits.json").read_text())["rows"]
    assert {row["audit"] for row in measured} == set(fs.AUDITS)

    def setting(row: dict) -> tuple:
        return row["model"], row["corpus"], row["pool"], row["strategy"]

    settings = {setting(row) for row in measured}
    assert {(model, corpus) for model, corpus, _, _ in settings} == {
        ("qwen2.5-0.5b", "rotten_tomatoes"),
        ("qwen2.5-1.5b", "rotten_tomatoes"),
        ("qwen2.5-0.5b", "r8"),
    }
    for one in settings:
        same = {row["audit"]: row for row in measured if setting(row) == one}
        assert same["ppi"]["promise_kept"] >= 0.95
        assert same["ppi"]["human_fraction"] <= same["audit"]["human_fraction"]
