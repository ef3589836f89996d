"""Several questions per task, measured: per-question quality zero-shot and after labels, two ways to a multi-label
probability, and reviews/s of one question against two and three.

Reads a labeled sample (JSON lines: "text" and one field per <Choices> name of the config; a list for a multi-label
question), splits off --test items, and scores them with the served model and the config's guidelines. Quality
after N labels is the loop's own model fitted on N training items of that question. Prints a table per question and
writes everything to --out as JSON.

Example:
  labelloop bench-questions --model embedded --labels 50,100,500
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from backend.bench import questions
from backend.cli import Parser, load_model, names, positive_int, reporting_errors
from backend.labelstudio import schema as schemas
from backend.paths import ROOT
from backend.settings import Settings

FACETS_CONFIG = ROOT / "label_config" / "review_facets.xml"
FACETS_GUIDELINES = ROOT / "guidelines" / "review_facets.md"
FACETS_SAMPLE = ROOT / "guidelines" / "samples" / "review_facets.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded", help="LLM_MODEL (default %(default)s)")
    parser.add_argument("--config", type=Path, default=FACETS_CONFIG, help="labeling config (default %(default)s)")
    parser.add_argument("--guidelines", type=Path, default=FACETS_GUIDELINES, help="guidelines (default %(default)s)")
    parser.add_argument("--sample", type=Path, default=FACETS_SAMPLE, help="labeled sample (default %(default)s)")
    parser.add_argument("--test", type=positive_int, default=140, help="items held out to score (default %(default)s)")
    parser.add_argument(
        "--labels",
        type=names,
        default=["50", "100", "500"],
        help="label counts to train on, comma-separated (default 50,100,500)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "artifacts" / "questions.json", help="JSON (default %(default)s)"
    )
    args = parser.parse_args(argv)
    return reporting_errors(lambda: _run(args), expected=(OSError, ValueError))


def _run(args) -> int:
    counts = [int(n) for n in args.labels]
    config = schemas.parse_config(args.config.read_text(encoding="utf-8"))
    sample = questions.load_sample(args.sample)
    missing = [f for f in ("text", *config.names) if any(f not in item for item in sample)]
    if missing:
        raise ValueError(
            f"{args.sample}: some items lack {', '.join(missing)} (the config's questions: {', '.join(config.names)})"
        )
    if len(sample) <= args.test:
        raise ValueError(f"{args.sample} has {len(sample)} items; --test {args.test} leaves none to learn from")
    settings = replace(Settings.from_env(), llm_model=args.model, guidelines=args.guidelines, calibration="contextual")
    predictor = load_model(settings)
    layer = round(settings.llm_feature_depth * predictor.depth)
    # The first question alone, with each other question added, and all of them: what a question costs by kind.
    first, rest = config.questions[0], config.questions[1:]
    speed = {"1 question": schemas.Config((first,))}
    for q in rest:
        kind = "multi-label" if q.multiple else "single-choice"
        speed[f"+ {q.from_name} ({kind})"] = schemas.Config((first, q))
    speed[f"all {len(config.questions)} questions"] = config
    result = {
        "model": predictor.source.name,
        "config": str(args.config.name),
        "features": f"llm-layer-{layer}" if layer else "minilm",
        **questions.run(predictor, config, sample, args.test, counts, layer, speed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print(result, counts)
    print(f"written to {args.out}")
    return 0


def _print(result: dict, counts: list[int]) -> None:
    print(f"{result['model']}, {result['config']}: {result['train']} items to learn from, {result['test']} to score")
    columns = ["zero_shot", "calibrated_on_train"] + [f"after_{n}" for n in counts]
    heads = {"zero_shot": "zero-shot", "calibrated_on_train": "calibrated"}
    print(f"{'question':<12} {'measure':<13}" + "".join(f"{heads.get(c, c.replace('_', ' ')):>12}" for c in columns))
    for name, row in result["questions"].items():
        for measure in ["micro_f1", "macro_f1", "hamming_loss"] if row["multiple"] else ["macro_f1", "accuracy"]:
            cells = []
            for c in columns:
                value = row.get(c)
                cells.append(f"{value[measure]:12.3f}" if value and measure in value else f"{'n/a':>12}")
            print(f"{name:<12} {measure:<13}" + "".join(cells))
        for method, variants in row.get("methods", {}).items():
            for variant, s in variants.items():
                print(
                    f"  {name} {method.replace('_', ' ')}, {variant}: micro-F1 {s['micro_f1']:.3f}, "
                    f"macro-F1 {s['macro_f1']:.3f}, Hamming {s['hamming_loss']:.3f}"
                )
    speeds = result["reviews_per_s"]
    base = next(iter(speeds.values()))
    print("reviews/s: " + ", ".join(f"{k} {v:.2f} ({v / base:.2f}x)" for k, v in speeds.items()))


if __name__ == "__main__":
    sys.exit(main())
