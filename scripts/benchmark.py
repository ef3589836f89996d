#!/usr/bin/env python3
"""Benchmark the backend on the Rotten Tomatoes corpus (fresh → Positive, rotten → Negative, plot → Neutral).

In one run, on this machine:
  1. /predict over HTTP against the backend under gunicorn (as `make serve` runs it): reviews per second and the
     serving process's peak memory;
  2. the same model and prompt answering in free text, one task at a time: reviews per second, and the ratio;
  3. accuracy, macro-F1 and Cohen's κ on the fixed stratified test sample without calibration, with contextual
     calibration and with the fitted calibration (fitted by scripts/calibrate.py on a disjoint sample).
Figures are printed as a table and written to --out as JSON.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import requests
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend import calibration as cal  # noqa: E402
from backend import corpus, engine_bench, evaluation, schema  # noqa: E402
from backend.service import DEFAULT_CONFIG, load_predictor  # noqa: E402
from backend.settings import Settings  # noqa: E402


def http_phase(texts, config: str, port: int, batch: int, log_path: Path) -> dict:
    try:
        proc = engine_bench.serve({"DATA_DIR": str(log_path.parent / "data")}, port, log_path)
    except RuntimeError as e:
        sys.exit(f"error: {e}")
    url = f"http://127.0.0.1:{port}"
    try:
        version = requests.post(f"{url}/setup", json={"project": "1.0", "schema": config}, timeout=300).json()
        tasks = [{"id": i, "data": {"text": t}} for i, t in enumerate(texts)]
        requests.post(f"{url}/predict", json={"tasks": tasks[:8], "label_config": config}, timeout=300)  # warm-up
        labels, started = [], time.perf_counter()
        for start in tqdm(range(0, len(tasks), batch), desc="/predict over HTTP", unit="request"):
            r = requests.post(f"{url}/predict", json={"tasks": tasks[start:start + batch], "label_config": config}, timeout=600)
            r.raise_for_status()
            labels += [x["result"][0]["value"]["choices"][0] for x in r.json()["results"]]
        elapsed = time.perf_counter() - started
        return {
            "reviews_per_s": len(texts) / elapsed,
            "seconds": elapsed,
            "peak_rss_mb": engine_bench.peak_rss_mb(engine_bench.worker_pids(proc.pid)),
            "model_version": version["model_version"],
            "labels": labels,
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--test-size", type=int, default=evaluation.TEST_SIZE, help="stratified test sample (default %(default)s)")
    parser.add_argument("--free-text", type=int, default=60, help="tasks answered in free text (default %(default)s)")
    parser.add_argument("--batch", type=int, default=100, help="tasks per /predict request (default %(default)s)")
    parser.add_argument("--port", type=int, default=9199, help="port for the benchmarked backend (default %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "benchmark.json", help="JSON results (default %(default)s)")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    config = DEFAULT_CONFIG.read_text()
    parsed = schema.parse(config)
    test, _ = evaluation.splits(test_size=args.test_size)
    texts, truth = list(test["text"]), list(test["label"])
    results: dict = {"test_size": len(texts), "label_counts": test["label"].value_counts().to_dict()}

    http = http_phase(texts, config, args.port, args.batch, args.out.parent / "benchmark-backend.log")
    results["http"] = {k: v for k, v in http.items() if k != "labels"}
    results["served"] = evaluation.report(truth, http.pop("labels"), parsed.labels)

    predictor = load_predictor(Settings.from_env())
    (sample,) = corpus.stratified_split(test, [args.free_text], seed=1)
    started = time.perf_counter()
    free = evaluation.free_text_labels(predictor, parsed, list(tqdm(sample["text"], desc="free text, per task")))
    free_rate = len(sample) / (time.perf_counter() - started)
    results["free_text"] = {"reviews_per_s": free_rate, "n": len(sample),
                            "unmatched": sum(x is None for x in free),
                            **evaluation.report(list(sample["label"]), [x or "" for x in free], parsed.labels)}
    results["speedup"] = results["http"]["reviews_per_s"] / free_rate

    setup = predictor.setup(parsed)
    features = cal.verbalizers(setup.prompt.labels)
    logprobs = predictor.feature_logprobs(setup, texts, features)
    content_free = predictor.scorer.label_logprobs(setup.prompt, list(cal.CONTENT_FREE))
    calibrations = {
        "none": cal.identity(setup.prompt.labels),
        "contextual": cal.contextual(setup.prompt.labels, content_free),
        setup.calibration.method: setup.calibration,  # the one served: fitted when guidelines/calibration/ matches
    }
    results["accuracy"] = {}
    for name, c in calibrations.items():
        probs = c.apply(logprobs[:, [features.index(f) for f in c.features]])
        pred = [parsed.labels[i] for i in probs.argmax(1)]
        results["accuracy"][name] = {**evaluation.report(truth, pred, parsed.labels),
                                     "polar_accuracy": evaluation.polar_accuracy(probs, truth, parsed.labels)}

    args.out.write_text(json.dumps(results, indent=2) + "\n")
    h, f = results["http"], results["free_text"]
    print(f"\ntest sample: {len(texts)} items {results['label_counts']}; model {h['model_version']}")
    print(f"{'way':34} {'reviews/s':>10}")
    print(f"{'/predict over HTTP (batch ' + str(args.batch) + ')':34} {h['reviews_per_s']:10.2f}")
    print(f"{'free text per task (' + str(f['n']) + ' tasks)':34} {f['reviews_per_s']:10.2f}")
    print(f"{'ratio':34} {results['speedup']:10.1f}x")
    print(f"peak memory of the serving process: {h['peak_rss_mb']:.0f} MB")
    print(f"\n{'calibration':12} {'accuracy':>9} {'macro-F1':>9} {'kappa':>7} {'Pos-vs-Neg acc':>15}  per-label F1")
    for name, r in results["accuracy"].items():
        per = " ".join(f"{k}={v:.2f}" for k, v in r["per_label_f1"].items())
        print(f"{name:12} {r['accuracy']:9.3f} {r['macro_f1']:9.3f} {r['kappa']:7.3f} {r['polar_accuracy']:15.3f}  {per}")
    print(f"{'free text':12} {f['accuracy']:9.3f} {f['macro_f1']:9.3f} {f['kappa']:7.3f} {'':>15}  (n={f['n']}, {f['unmatched']} unmatched)")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
