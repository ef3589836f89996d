"""Treat the LLM as one more annotator: Cohen's κ against each human and the majority, per prompt variant.

Two sources of human labels:
  --export FILE   a Label Studio JSON export of a pilot (its annotators are the humans; its texts are scored);
  otherwise       the Rotten Tomatoes corpus, whose labels stand in for the humans, on a 50-review pilot and a
                  larger stratified sample (--sample), both disjoint from the calibration sample.
Examples:
  labelloop llm-vs-human
  labelloop llm-vs-human --export pilot.json --variants few-shot,minimal --format json
"""

import argparse
import json
import logging
import sys
from pathlib import Path

from backend import corpus, guidelines
from backend.bench import evaluation
from backend.cli import Parser, reporting_errors
from backend.corpus import LABELS
from backend.labelstudio.export import Item, load_export
from backend.llm import weights as models
from backend.llm.local import LLMScorer
from backend.quality import llm_vs_human
from backend.settings import Settings


def samples(args) -> dict[str, tuple[list[Item], list]]:
    if args.export:
        data = load_export(args.export, labels=list(LABELS))
        items = [i for i in data.items if i.text]
        return {args.export.name: (items, data.annotators)}
    test, _ = evaluation.splits(test_size=args.sample)
    items = [
        Item(task_id=i, text=t, labels={"corpus": lab}) for i, (t, lab) in enumerate(zip(test["text"], test["label"]))
    ]
    (pilot,) = corpus.stratified_split(test, [50], seed=2)
    pilot_items = [
        Item(task_id=i, text=t, labels={"corpus": lab}) for i, (t, lab) in enumerate(zip(pilot["text"], pilot["label"]))
    ]
    return {
        "pilot (50, corpus labels)": (pilot_items, ["corpus"]),
        f"sample ({len(items)}, corpus labels)": (items, ["corpus"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export", type=Path, help="Label Studio JSON export with human annotations")
    parser.add_argument(
        "--sample", type=int, default=evaluation.TEST_SIZE, help="corpus sample size (default %(default)s)"
    )
    parser.add_argument(
        "--variants", default=",".join(llm_vs_human.VARIANTS), help="prompt variants (default %(default)s)"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(llm_vs_human.VARIANTS)
    if unknown:
        print(
            f"error: unknown variant {', '.join(sorted(unknown))}; choose from {', '.join(llm_vs_human.VARIANTS)}",
            file=sys.stderr,
        )
        return 2
    return reporting_errors(lambda: _run(args, variants), status=2)  # its errors have always exited 2


def _run(args: argparse.Namespace, variants: list[str]) -> int:
    sources = samples(args)
    settings = Settings.from_env()
    scorer = LLMScorer.load(models.resolve(settings.llm_model, settings.llm_cache_dir).path)
    guide = guidelines.load(settings.guidelines)
    report: dict = {}
    for name, (items, annotators) in sources.items():
        texts = [i.text for i in items]
        for variant in variants:
            prompt = llm_vs_human.variant_prompt(scorer, LABELS, guide, variant)
            ours = llm_vs_human.llm_labels(scorer, prompt, texts)
            report.setdefault(name, {})[variant] = llm_vs_human.kappas(items, annotators, ours, LABELS)
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    for name, by_variant in report.items():
        print(f"\n{name}")
        print(f"  {'variant':12} {'against':12} {'kappa':>7} {'n':>5}  band")
        for variant, rows in by_variant.items():
            for who, r in rows.items():
                k = "n/a" if r["kappa"] is None else f"{r['kappa']:.3f}"
                print(f"  {variant:12} {who:12} {k:>7} {r['n']:5}  {r['band'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
