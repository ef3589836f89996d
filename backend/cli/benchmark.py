"""Benchmark the packaged models side by side on the bundled Rotten Tomatoes corpus (fresh → Positive, rotten →
Negative, plot → Neutral), a packaged corpus (--corpus NAME) or a team's own labeled file (--data FILE: CSV/TSV or
JSONL with text and label columns, or a Label Studio JSON export), scored with its --config and --guidelines (the
backend under test is started with that GUIDELINES and set up with that config). With --data or --corpus the test
sample is --test-size items of the set and the learning curve's pool --pool others.

In one run, on this machine, for each model of --models (default: the 0.5B and the 1.5B):
  1. /predict over HTTP against the backend under gunicorn (as `make serve` runs it): reviews per second and the
     serving process's peak memory;
  2. efficiency: this machine's bf16 matmul rate on the model's MLP shapes, measured now, the ceiling it implies for
     the sample's tokens (backend/bench/efficiency.py), and served reviews/s as a fraction of it; the same scoring
     in-process (no HTTP, no JSON) beside it, and where its time goes (matmuls, LM head, attention, other kernels,
     Python, tokenising; measured under torch's profiler);
  3. accuracy, macro-F1, Cohen's κ, Positive-vs-Negative accuracy (where those are labels) and per-label F1 on the
     fixed stratified test sample without calibration, with contextual calibration and with the fitted one
     (labelloop calibrate, which fits one on a team's file too);
  4. the loop's learning curve: the served setup (the model's hidden state + its probabilities) after 100 and 500
     random labels from a pool disjoint from the test sample (mean of 3 draws);
and, for the first model, the same prompt answering in free text one task at a time (the ratio to /predict).
Figures are printed as a table and written to --out as JSON.

examples:
  labelloop benchmark --models embedded
  labelloop benchmark --models embedded --data team_labels.csv --config label_config/sentiment.xml \\
      --guidelines guidelines/sentiment.md --test-size 200 --pool 300
"""

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import requests
from tqdm import tqdm

from backend import corpus
from backend.bench import cascade, efficiency, evaluation, simulation
from backend.bench.datasets import DataError
from backend.cli import Parser, add_data_arguments, data_source, positive_int, reporting_errors
from backend.corpus import CorpusError
from backend.dev import processes
from backend.labelstudio import schema
from backend.learning.embeddings import Embedder
from backend.llm import calibration as cal
from backend.llm import weights as models
from backend.llm.cascade import Cascade
from backend.paths import DEMO_CONFIG, ROOT
from backend.serving.service import load_predictor
from backend.settings import Settings

CURVE_SIZES = (100, 500)
CURVE_SEEDS = range(3)
POLAR = {"Positive", "Negative"}  # the Positive-vs-Negative accuracy needs both labels


def http_phase(
    texts,
    config: str,
    port: int,
    *,
    batch: int,
    log_path: Path,
    model: str,
    guidelines: Path | None = None,
    data_key: str = "text",
) -> dict:
    # A throughput run, not a latency one: a slow model must not have tasks skipped at Label Studio's deadline.
    env = {"DATA_DIR": str(log_path.parent / "data"), "LLM_MODEL": model, "PREDICT_TIMEOUT": "3000"}
    if guidelines is not None:  # the prompt of the set's own guidelines, as the team's backend would serve it
        env["GUIDELINES"] = str(guidelines.resolve())
    with ExitStack() as stack:
        try:
            url, proc = stack.enter_context(processes.serving(env, log_path, port=port, timeout=300.0))
        except RuntimeError as e:  # a model that will not load, a busy port: one line naming the log to read
            sys.exit(f"error: {str(e).splitlines()[0]}")
        version = requests.post(f"{url}/setup", json={"project": "1.0", "schema": config}, timeout=300).json()
        tasks = [{"id": i, "data": {data_key: t}} for i, t in enumerate(texts)]  # the field the config's tag reads
        requests.post(f"{url}/predict", json={"tasks": tasks[:8], "label_config": config}, timeout=300)  # warm-up
        labels, started = [], time.perf_counter()
        for start in tqdm(range(0, len(tasks), batch), desc="/predict over HTTP", unit="request"):
            r = requests.post(
                f"{url}/predict", json={"tasks": tasks[start : start + batch], "label_config": config}, timeout=600
            )
            r.raise_for_status()
            answer = r.json()
            if answer.get("skipped"):
                sys.exit(f"error: {len(answer['skipped'])} tasks skipped by the backend: {answer['skipped'][0]}")
            labels += [x["result"][0]["value"]["choices"][0] for x in answer["results"]]
        elapsed = time.perf_counter() - started
        return {
            "reviews_per_s": len(texts) / elapsed,
            "seconds": elapsed,
            "peak_rss_mb": processes.memory_mb(*processes.worker_pids(proc.pid), peak=True),
            "model_version": version["model_version"],
            "labels": labels,
        }


def model_phase(model: str, test, config: str, parsed, args, free_text: int, source=None) -> dict:
    """Every figure of one model (the module docstring's 1-4, and the free text when free_text > 0); `source` (a
    datasets.Source) is the set, its config and guidelines, None for the bundled corpus."""
    texts, truth = list(test["text"]), list(test["label"])
    guidelines = source.guidelines if source is not None else None
    results: dict = {"model": model}
    http = http_phase(
        texts,
        config,
        args.port,
        batch=args.batch,
        log_path=args.out.parent / f"benchmark-{model}.log",
        model=model,
        guidelines=guidelines,
        data_key=parsed.data_key,
    )
    results["http"] = {k: v for k, v in http.items() if k != "labels"}
    results["served"] = evaluation.report(truth, http.pop("labels"), parsed.labels)

    settings = replace(Settings.from_env(), llm_model=model)
    if guidelines is not None:
        settings = replace(settings, guidelines=guidelines)
    predictor = load_predictor(settings)
    setup = predictor.setup(parsed)
    predictor.probabilities(parsed, texts[:8])  # warm-up, as the HTTP phase had
    timed = texts[: args.in_process]
    started = time.perf_counter()
    predictor.probabilities(parsed, timed)  # what /predict computes, without HTTP and JSON
    in_process = len(timed) / (time.perf_counter() - started)
    config_obj = predictor.scorer.model.config
    rate = efficiency.matmul_rate(config_obj, device=str(predictor.scorer.device))
    tokens = efficiency.review_tokens(predictor.scorer, setup.prompt, texts, setup.calibration.features)
    ceiling = efficiency.ceiling(rate, config_obj, tokens)
    timed_ceiling = efficiency.ceiling(rate, config_obj, tokens[: len(timed)])
    results["efficiency"] = {
        **ceiling,
        "in_process_reviews_per_s": in_process,
        "in_process_n": len(timed),
        "served_fraction": results["http"]["reviews_per_s"] / ceiling["reviews_per_s"],
        "in_process_fraction": in_process / timed_ceiling["reviews_per_s"],
        "device": str(predictor.scorer.device),
        "overheads": efficiency.overheads(
            predictor.scorer, setup.prompt, texts, setup.calibration.features, config_obj
        ),
        "time_shares": efficiency.time_shares(predictor.scorer, setup.prompt, timed, setup.calibration.features),
    }

    if free_text:
        (sample,) = corpus.stratified_split(test, [min(free_text, len(test))], seed=1)
        started = time.perf_counter()
        free = evaluation.free_text_labels(predictor, parsed, list(tqdm(sample["text"], desc="free text, per task")))
        free_rate = len(sample) / (time.perf_counter() - started)
        results["free_text"] = {
            "reviews_per_s": free_rate,
            "n": len(sample),
            "unmatched": sum(x is None for x in free),
            **evaluation.report(list(sample["label"]), [x or "" for x in free], parsed.labels),
        }
        results["speedup"] = results["http"]["reviews_per_s"] / free_rate

    # One scoring pass of the test sample serves the learning curve and the calibrations' comparison.
    inputs = simulation.load_inputs(args.pool, args.test_size, predictor=predictor, judge_variants=(), source=source)
    if isinstance(predictor, Cascade):  # answered as it serves a project of these texts: its pool measured
        pool, test_split = (source.pool, source.test) if source else simulation.pool_and_test(args.pool, args.test_size)
        inputs, results["cascade"] = cascade.served_inputs(
            predictor,
            inputs,
            schema.as_config(parsed),
            pool_texts=list(pool["text"]),
            test_texts=list(test_split["text"]),
            embed=Embedder().encode,
        )
    features = inputs.info["features"]
    logprobs = inputs.test_features
    truth = [inputs.labels[i] for i in inputs.test_y]  # the same sample, in the loader's order
    if "cascade" in results:  # its served answers alone: the first model's calibrations would read as the cascade's
        answered = {"cascade": inputs.test_llm}
    else:
        content_free = predictor.scorer.label_logprobs(setup.prompt, list(cal.CONTENT_FREE))
        calibrations = {
            "none": cal.identity(setup.prompt.labels),
            "contextual": cal.contextual(setup.prompt.labels, content_free),
            setup.calibration.method: setup.calibration,  # the one served: fitted when guidelines/calibration/ matches
        }
        answered = {n: c.apply(logprobs[:, [features.index(f) for f in c.features]]) for n, c in calibrations.items()}
    results["served_calibration"] = setup.calibration.method
    results["model_version"] = results["cascade"]["model_version"] if "cascade" in results else setup.model_version
    results["accuracy"] = {}
    for name, probs in answered.items():
        pred = [parsed.labels[i] for i in probs.argmax(1)]
        polar = evaluation.polar_accuracy(probs, truth, parsed.labels) if POLAR <= set(parsed.labels) else None
        results["accuracy"][name] = {**evaluation.report(truth, pred, parsed.labels), "polar_accuracy": polar}

    results["learning_curve"] = {
        "kind": simulation.SERVED_SETUP,
        "pool": args.pool,
        "seeds": list(CURVE_SEEDS),
        "zero_shot": simulation.macro_f1(inputs.test_y, inputs.test_llm, inputs.n_labels),
        "macro_f1_at": simulation.learning_curve(inputs, simulation.SERVED_SETUP, CURVE_SEEDS, CURVE_SIZES),
    }
    del predictor
    return results


def print_tables(results: dict) -> None:
    print(
        f"\ntest sample: {results['test_size']} items of {results.get('data', 'rotten_tomatoes')} "
        f"{results['label_counts']}"
    )
    print(f"\n{'model':16} {'reviews/s':>9} {'in-process':>10} {'ceiling':>8} {'efficiency':>10} {'peak MB':>8}")
    for m in results["models"]:
        e = m["efficiency"]
        print(
            f"{m['model']:16} {m['http']['reviews_per_s']:9.2f} {e['in_process_reviews_per_s']:10.2f} "
            f"{e['reviews_per_s']:8.2f} {e['served_fraction']:10.2f} {m['http']['peak_rss_mb']:8.0f}"
            f"   ({e['matmul_gflops']:.0f} GFLOP/s, {e['gflop_per_token']:.2f} GFLOP/token, "
            f"{e['mean_tokens_per_review']:.1f} tokens/review)"
        )
    parts = ("linear", "lm_head", "attention", "other_kernels", "python", "tokenising")
    print(f"\n{'model':16} " + " ".join(f"{p:>13}" for p in parts) + "   (share of the in-process scoring time)")
    for m in results["models"]:
        shares = m["efficiency"]["time_shares"]
        print(f"{m['model']:16} " + " ".join(f"{shares[p]:13.3f}" for p in parts))
    print(
        f"\n{'model':16} {'calibration':12} {'accuracy':>9} {'macro-F1':>9} {'kappa':>7} {'Pos-vs-Neg':>11}  per-label F1"
    )
    for m in results["models"]:
        for name, r in m["accuracy"].items():
            per = " ".join(f"{k}={v:.2f}" for k, v in r["per_label_f1"].items())
            polar = "-" if r["polar_accuracy"] is None else f"{r['polar_accuracy']:.3f}"
            print(
                f"{m['model']:16} {name:12} {r['accuracy']:9.3f} {r['macro_f1']:9.3f} {r['kappa']:7.3f} "
                f"{polar:>11}  {per}"
            )
    print(
        f"\n{'model':16} {'zero-shot':>9}"
        + "".join(f"{'after ' + str(n):>11}" for n in CURVE_SIZES)
        + "   (served setup, macro-F1, random labels)"
    )
    for m in results["models"]:
        c = m["learning_curve"]
        at = c["macro_f1_at"]  # a size above the pool is left out
        print(
            f"{m['model']:16} {c['zero_shot']:9.3f}"
            + "".join(f"{at[str(n)]:11.3f}" if str(n) in at else f"{'-':>11}" for n in CURVE_SIZES)
        )
    first = results["models"][0]
    if "free_text" in first:
        f = first["free_text"]
        print(
            f"\nfree text per task ({f['n']} tasks, {first['model']}): {f['reviews_per_s']:.2f} reviews/s, "
            f"{first['speedup']:.1f}x slower than /predict; accuracy {f['accuracy']:.3f}, macro-F1 {f['macro_f1']:.3f} "
            f"({f['unmatched']} unmatched)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models",
        default="embedded,embedded-1.5b",
        help=f"comma-separated LLM_MODEL values, from {', '.join(models.PACKAGED)} or any LLM_MODEL "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--test-size",
        "--test",
        type=positive_int,
        default=evaluation.TEST_SIZE,
        help=f"stratified test sample: of the bundled corpus's fixed one, at most {evaluation.TEST_SIZE}"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--in-process",
        type=int,
        default=200,
        help="test items scored in-process, timed beside /predict (default %(default)s)",
    )
    parser.add_argument(
        "--pool", type=positive_int, default=500, help="pool the learning curve draws labels from (default %(default)s)"
    )
    parser.add_argument(
        "--free-text", type=int, default=60, help="tasks answered in free text, first model (default %(default)s)"
    )
    parser.add_argument("--batch", type=int, default=100, help="tasks per /predict request (default %(default)s)")
    parser.add_argument("--port", type=int, default=9199, help="port for the benchmarked backend (default %(default)s)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "artifacts" / "benchmark.json", help="JSON results (default %(default)s)"
    )
    add_data_arguments(parser)
    args = parser.parse_args(argv)
    try:
        source = data_source(args, args.pool, args.test_size)  # the data file is read and split before any model
    except (CorpusError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if source is None and args.test_size > evaluation.TEST_SIZE:
        print(f"error: --test-size must be at most {evaluation.TEST_SIZE}, got {args.test_size}", file=sys.stderr)
        return 2
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot write to --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    return reporting_errors(lambda: _run(args, source))


def _run(args: argparse.Namespace, source) -> int:
    names = [m.strip() for m in args.models.split(",") if m.strip()]

    if source is None:
        config = DEMO_CONFIG.read_text()
        test, _ = evaluation.splits(test_size=args.test_size)
    else:
        config, test = source.config, source.test
    parsed = schema.parse(config)
    results: dict = {
        "data": source.name if source is not None else "rotten_tomatoes",
        "test_size": len(test),
        "label_counts": test["label"].value_counts().to_dict(),
        "cpu_count": os.cpu_count(),
        "models": [],
    }
    for i, model in enumerate(names):
        results["models"].append(
            model_phase(model, test, config, parsed, args, args.free_text if i == 0 else 0, source)
        )
        args.out.write_text(json.dumps(results, indent=2) + "\n")  # what is done is kept if a later model fails
    print_tables(results)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
