"""What MAX_TEXT_TOKENS costs and saves on long texts (plot synopses and long reviews of the Rotten Tomatoes corpus).

Takes the --n longest of a random sample of the corpus outside the benchmark's test and calibration samples (their
length in the model's tokens), and scores them with the served model and calibration once per cut in --cuts: a
text longer than the cut keeps its first 3/4 and last 1/4. Prints, per cut, the share of texts cut, accuracy and
macro-F1 against the corpus labels, the agreement with the uncut answers, and reviews/s measured side by side in
this run; writes the figures to --out as JSON.

Example:
  labelloop bench-long-texts --model embedded --n 200 --cuts 32,64,96,128,256,512
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from backend import corpus
from backend.bench import evaluation
from backend.cli import Parser, reporting_errors
from backend.labelstudio import schema
from backend.paths import DEMO_CONFIG, ROOT
from backend.serving.service import load_predictor
from backend.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded", help="LLM_MODEL (default %(default)s)")
    parser.add_argument("--n", type=int, default=200, help="longest texts to score (default %(default)s)")
    parser.add_argument("--sample", type=int, default=2000, help="random texts to pick them from (default %(default)s)")
    parser.add_argument("--cuts", default="32,64,96,128,256,512", help="MAX_TEXT_TOKENS values (default %(default)s)")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "artifacts" / "long_texts.json", help="JSON (default %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        cuts = sorted({int(c) for c in args.cuts.split(",") if c.strip()})
    except ValueError:
        parser.error(f"--cuts {args.cuts!r}: comma-separated integers")
    if not cuts or min(cuts) < 8 or args.n < 10 or args.sample < args.n:
        parser.error("cuts must be at least 8, --n at least 10 and --sample at least --n")
    return reporting_errors(lambda: _run(args, cuts))


def _run(args: argparse.Namespace, cuts: list[int]) -> int:

    parsed = schema.parse(DEMO_CONFIG.read_text())
    test, calibration = evaluation.splits()
    rest = corpus.load().drop(index=test.index.union(calibration.index))
    sample = rest.sample(n=min(args.sample, len(rest)), random_state=7)
    predictor = load_predictor(replace(Settings.from_env(), llm_model=args.model))
    scorer = predictor.scorer
    lengths = sample["text"].map(lambda t: len(scorer.encode(t)))
    long = sample.assign(tokens=lengths).sort_values("tokens", ascending=False).head(args.n)
    texts, truth = list(long["text"]), list(long["label"])
    predictor.probabilities(parsed, texts[:4])  # warm-up: the prompt's prefix

    rows, reference = [], None
    for cut in sorted(cuts, reverse=True):  # the longest cut first: the others are compared with its answers
        scorer.max_text_tokens = cut
        started = time.perf_counter()
        probs = predictor.probabilities(parsed, texts)
        seconds = time.perf_counter() - started
        pred = [parsed.labels[i] for i in probs.argmax(1)]
        reference = reference or pred
        report = evaluation.report(truth, pred, parsed.labels)
        rows.append(
            {
                "max_text_tokens": cut,
                "cut_share": float((long["tokens"] > cut).mean()),
                "reviews_per_s": len(texts) / seconds,
                "accuracy": report["accuracy"],
                "macro_f1": report["macro_f1"],
                "same_as_longest": sum(a == b for a, b in zip(pred, reference)) / len(pred),
                "per_label_f1": report["per_label_f1"],
            }
        )
    rows.sort(key=lambda r: r["max_text_tokens"])
    result = {
        "model": args.model,
        "n": len(texts),
        "tokens_min": int(long["tokens"].min()),
        "tokens_median": float(long["tokens"].median()),
        "tokens_max": int(long["tokens"].max()),
        "label_counts": long["label"].value_counts().to_dict(),
        "cuts": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{len(texts)} longest of {len(sample)} texts ({result['tokens_min']}-{result['tokens_max']} tokens, median "
        f"{result['tokens_median']:.0f}; {result['label_counts']}), model {args.model}"
    )
    print(
        f"{'MAX_TEXT_TOKENS':>15} {'cut':>6} {'reviews/s':>10} {'accuracy':>9} {'macro-F1':>9} {'same as longest':>16}"
    )
    for r in rows:
        print(
            f"{r['max_text_tokens']:15} {r['cut_share']:6.0%} {r['reviews_per_s']:10.2f} {r['accuracy']:9.3f} "
            f"{r['macro_f1']:9.3f} {r['same_as_longest']:16.3f}"
        )
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
