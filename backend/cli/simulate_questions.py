"""Simulate the loop on a config with several questions (every question learning from the labels): rank the pool
across the questions, by the first question alone, or at random, and count the labels each needs to reach 95% of
the full pool's mean macro-F1 over questions.

Reads a labeled multi-question set: a packaged one (--corpus, installed by `make corpora`) or a JSON-lines sample
(--sample, with --config and --guidelines: "text" and one field per <Choices> name, a list for a multi-label
question). The first --pool items are the pool, the next --test the test split. Rule and accounting:
backend/bench/question_loop.py. The LLM's pass is cached in --cache-dir, so a second run only simulates.

Writes OUT/results.json (zero_shot, full_pool, target, rankings.<name>.curve / .labels_to_target) and
OUT/questions.png (mean macro-F1 against labels per ranking), and prints a table.

Examples:
  labelloop simulate-questions --corpus post_facets --pool 1000 --test 400 --seeds 3 --out artifacts/questions-loop
  labelloop simulate-questions --sample guidelines/samples/review_facets.jsonl \
      --config label_config/review_facets.xml --guidelines guidelines/review_facets.md --pool 160 --test 80 \
      --budget 140 --batch 10 --out /tmp/facets-loop
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from backend.bench import form_corpora, question_loop, questions
from backend.bench.results import QuestionsResults
from backend.cli import Parser, check_writable_dir, load_model, names, positive_int, reporting_errors
from backend.files import write_json
from backend.labelstudio import schema as schemas
from backend.paths import ROOT


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (default: --corpus post_facets)")
    data.add_argument("--corpus", metavar="NAME", help=f"a packaged set: {', '.join(form_corpora.FORM_CORPORA)}")
    data.add_argument("--sample", type=Path, metavar="FILE", help="a JSON-lines sample (with --config, --guidelines)")
    data.add_argument("--config", type=Path, metavar="XML", help="the labeling config (default: the corpus's)")
    data.add_argument("--guidelines", type=Path, metavar="MD", help="the guidelines (default: the corpus's)")
    parser.add_argument("--pool", type=positive_int, default=1000, help="pool items (default %(default)s)")
    parser.add_argument(
        "--skip", type=int, default=0, help="items passed over first: another slice of the set (default %(default)s)"
    )
    parser.add_argument("--test", type=positive_int, default=400, help="test items (default %(default)s)")
    parser.add_argument("--seeds", type=positive_int, default=3, help="repetitions (default %(default)s)")
    parser.add_argument("--seed-size", type=positive_int, default=10, help="random first labels (default %(default)s)")
    parser.add_argument("--batch", type=positive_int, default=20, help="labels per step (default %(default)s)")
    parser.add_argument("--budget", type=positive_int, default=500, help="labels at most (default %(default)s)")
    parser.add_argument(
        "--rankings",
        type=names,
        default=list(question_loop.RANKINGS),
        help=f"comma-separated, from {', '.join(question_loop.RANKINGS)} (default all)",
    )
    parser.add_argument(
        "--strategy", default="margin", help="the uncertainty each question is ranked by (default %(default)s)"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=ROOT / "artifacts" / "cache", help="LLM outputs (default %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "questions-loop", help="(default %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def _items(args: argparse.Namespace) -> tuple[list[dict], Path, Path]:
    if args.sample and args.corpus:
        raise question_loop.QuestionLoopError("give --corpus NAME or --sample FILE, not both")
    if args.sample:
        if not (args.config and args.guidelines):
            raise question_loop.QuestionLoopError("--sample FILE needs --config XML and --guidelines MD")
        return questions.load_sample(args.sample), args.config, args.guidelines
    name = args.corpus or "post_facets"
    if name not in form_corpora.FORM_CORPORA:
        raise question_loop.QuestionLoopError(
            f"unknown corpus {name!r}; use one of {', '.join(form_corpora.FORM_CORPORA)}"
        )
    entry = form_corpora.FORM_CORPORA[name]
    return form_corpora.form_corpus(name), args.config or entry.config, args.guidelines or entry.guidelines


def run(args: argparse.Namespace) -> int:
    from backend.loop.features import TextFeatures
    from backend.settings import Settings

    unknown = set(args.rankings) - set(question_loop.RANKINGS)
    if unknown:
        raise question_loop.QuestionLoopError(
            f"unknown ranking {sorted(unknown)[0]!r}; use {', '.join(question_loop.RANKINGS)}"
        )
    items, config_path, guidelines = _items(args)
    config = schemas.parse_config(config_path.read_text(encoding="utf-8"))
    missing = [f for f in ("text", *config.names) if any(f not in item for item in items)]
    if missing:
        raise question_loop.QuestionLoopError(
            f"some items lack {', '.join(missing)} (the config asks {', '.join(config.names)})"
        )
    if args.skip < 0:
        raise question_loop.QuestionLoopError("--skip must be 0 or more")
    if len(items) < args.skip + args.pool + args.test:
        raise question_loop.QuestionLoopError(
            f"the set has {len(items)} items; --skip {args.skip}, --pool {args.pool} and --test {args.test} need more"
        )
    check_writable_dir(args.out)
    settings = replace(Settings.from_env(), guidelines=guidelines, data_dir=args.cache_dir)
    predictor = load_model(settings)
    text = TextFeatures(settings, lambda: predictor)
    chosen = items[args.skip : args.skip + args.pool + args.test]
    f = question_loop.features(text, config, chosen, progress=not args.quiet)
    result: QuestionsResults = {
        "model": predictor.source.name,
        "llm_version": f.version,
        "config": config_path.name,
        "llm_pass_seconds": round(f.seconds, 1),
        **question_loop.simulate(
            config,
            f,
            args.pool,
            seeds=args.seeds,
            seed_size=args.seed_size,
            batch=args.batch,
            budget=args.budget,
            rankings=args.rankings,
            strategy=args.strategy,
            progress=not args.quiet,
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "results.json", result)
    question_loop.plot(result, args.out / "questions.png")
    _print(result)
    print(f"written to {args.out}")
    return 0


def _print(result: QuestionsResults) -> None:
    names_ = list(result["zero_shot"])
    print(
        f"{result['model']}, {result['config']}: pool {result['pool']}, test {result['test']}, {result['seeds']} seeds"
    )
    print(
        "macro-F1 on test: "
        + ", ".join(
            f"{n} zero-shot {result['zero_shot'][n]:.3f} / full pool {result['full_pool'][n]:.3f}" for n in names_
        )
    )
    print(f"target: {result['target']:.3f} (95% of the full pool's mean {result['full_pool']['mean']:.3f})")
    t = result["training_seconds"]
    print(
        f"a training run on the {result['pool']} pool labels: {t['all']:.2f} s ("
        + ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "all")
        + f"; load average {result['load_average']})"
    )
    marks = [s["labels"] for s in next(iter(result["rankings"].values()))["curve"]]
    shown = [m for m in marks if m in (20, 50, 100, 200, 500) or m == marks[-1]]
    print(f"{'ranking':<8} {'to target':>10}  " + "  ".join(f"{m:>6}" for m in shown))
    for name, r in result["rankings"].items():
        curve = {s["labels"]: s["mean"] for s in r["curve"]}
        reach = r["labels_to_target_mean"]
        print(
            f"{name:<8} {reach if reach is not None else 'not reached':>10}  "
            + "  ".join(f"{curve[m]:6.3f}" for m in shown)
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return reporting_errors(lambda: run(args), expected=(OSError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
