"""Compare ranking strategies in a simulated annotation loop (the corpus labels play the annotator) on the bundled
Rotten Tomatoes reviews, a packaged corpus (--corpus) or a team's own labeled file (--data, with its --config and
--guidelines): what a team lead runs on a pilot sample to learn the zero-shot quality and the learning curve.

For each model kind (classifier: embeddings only; blend: embeddings + LLM probabilities) and each strategy, over
several seeds: start from a random seed set, then label the batch the strategy ranks first, refit, and measure
macro-F1 on the fixed test split, until the budget. Reports each curve's area (mean macro-F1 over the labels axis),
the labels needed to reach 95% of the macro-F1 of the same kind trained on the whole pool (mean over seeds; null
unless every seed gets there within the budget) and its ratio to random sampling's.

Writes OUT/results.json and OUT/curves.png and prints a table. The LLM's outputs and the embeddings are cached in
--cache-dir, so a second run only simulates. Logic: backend/bench/simulation.py.

Strategies: random, least_confidence, margin, entropy, diversity (k-center greedy), hybrid (margin + diversity),
disagreement (model vs LLM probabilities, Jensen-Shannon), committee (entropy + disagreement), llm_informative,
llm_difficult, llm_diverse (LLM-judged, backend/ranking/judge.py), hybrid_llm (margin + diversity + llm_informative).

The zero-shot block compares every label-free calibration (none, contextual, domain, pool: the backend's default
for a new project, fitted where a file matches) on the test split and on the pool, and a rule-based lexicon where the
labels are Positive/Negative/Neutral, and how close the pool lies to a matching fitted file's texts (the file serves
only at 0.72 or more), and what SELF_TEACH=1 would serve before the first label (a state blend taught by the LLM's
own surest answers on the pool: turn it on where it beats the LLM alone on your pilot). Kinds: classifier, blend, llm_state (served: the recipe the labels choose among the trained
ones and the LLM under the calibration they find likeliest; the table says what they chose at each size),
state_fixed (the state blend at one C), llm_refit (the LLM's log-probabilities alone).

Examples:
  labelloop compare-strategies --data pilot.csv --config label_config/sentiment.xml \
      --guidelines guidelines/sentiment.md --pool 400 --test 250 --seeds 3 --strategies random --out /tmp/pilot
  labelloop compare-strategies --pool 1500 --seeds 5 --budget 1000 --out artifacts/strategies
  labelloop compare-strategies --pool 300 --seeds 2 --strategies random,margin --kinds blend --out /tmp/s
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from backend.bench import evaluation, reports, simulation
from backend.cli import (
    Parser,
    add_data_arguments,
    check_writable_dir,
    data_source,
    names,
    positive_int,
    reporting_errors,
)
from backend.errors import LabelloopError
from backend.files import write_json
from backend.paths import ROOT


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=positive_int, default=1500, help="pool size, stratified (default %(default)s)")
    parser.add_argument("--seeds", type=positive_int, default=5, help="repetitions, seeds 0..K-1 (default %(default)s)")
    parser.add_argument(
        "--strategies",
        type=names,
        default=list(simulation.known_strategies()),
        help="comma-separated strategies (default: all)",
    )
    parser.add_argument(
        "--kinds",
        type=names,
        default=list(simulation.DEFAULT_SETUPS),
        help=f"comma-separated model kinds, from: {', '.join(simulation.SETUPS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--budget", type=positive_int, help="labels per run, seed set included (default: two thirds of the pool)"
    )
    parser.add_argument("--batch", type=positive_int, default=20, help="labels per step (default %(default)s)")
    parser.add_argument(
        "--seed-size", type=positive_int, default=20, help="random labels to start from (default %(default)s)"
    )
    parser.add_argument(
        "--test-size",
        "--test",
        type=positive_int,
        default=evaluation.TEST_SIZE,
        help=f"stratified test split: of the bundled corpus's fixed one, at most {evaluation.TEST_SIZE}"
        " (default %(default)s)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=simulation.DEFAULT_CACHE_DIR,
        help="cache of embeddings and LLM outputs (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "artifacts" / "strategies",
        help="directory for results.json and curves.png (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--calibration",
        default="auto",
        help="the zero-shot calibration the models read: auto (as the backend serves: a matching "
        "fitted file when the pool resembles its texts, else domain-context on the pool), none, contextual, domain, "
        "pool, fitted "
        "(default %(default)s)",
    )
    add_data_arguments(parser)
    return parser.parse_args(argv)


def check(args: argparse.Namespace) -> None:
    """Everything that can be checked before the model loads (the data file is read and split here);
    SimulationError/OSError/CorpusError/DataError say what is wrong."""
    simulation.check_strategies(args.strategies)
    bad = [k for k in args.kinds if k not in simulation.SETUPS]
    if bad or not args.kinds:
        raise simulation.SimulationError(
            f"unknown model kind {', '.join(bad) or '(none)'}; choose from {', '.join(simulation.SETUPS)}"
        )
    args.source = data_source(args, args.pool, args.test_size)
    if args.source is None and args.test_size > evaluation.TEST_SIZE:
        raise simulation.SimulationError(f"--test-size must be at most {evaluation.TEST_SIZE}, got {args.test_size}")
    if args.budget is None:
        args.budget = min(args.pool, max(args.seed_size, 2 * args.pool // 3))
    simulation.check_settings(args.pool, args.seed_size, args.batch, args.budget)
    if args.source is None:
        simulation.check_pool(args.pool)
    check_writable_dir(args.out)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return reporting_errors(lambda: run(args), status=2)  # its errors have always exited 2, the model's too


def run(args: argparse.Namespace) -> int:
    try:
        check(args)
    except OSError as e:
        raise LabelloopError(f"cannot write to --out {args.out}: {e.strerror or e}") from None
    started = time.perf_counter()
    try:
        inputs = simulation.load_inputs(
            args.pool,
            args.test_size,
            args.cache_dir,
            simulation.needed_judges(args.strategies),
            progress=not args.quiet,
            source=args.source,
            calibration=args.calibration,
        )
    except OSError as e:
        raise LabelloopError(f"cache directory {args.cache_dir}: {e.strerror or e}") from None
    results = simulation.compare(
        inputs,
        args.strategies,
        args.kinds,
        range(args.seeds),
        seed_size=args.seed_size,
        batch=args.batch,
        budget=args.budget,
        progress=not args.quiet,
    )
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results_path, plot_path = args.out / "results.json", args.out / "curves.png"
    write_json(results_path, results, indent=2)
    reports.compare_plot(results, plot_path)
    print(reports.compare_table(results))
    print(f"\nwrote {results_path} and {plot_path} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
