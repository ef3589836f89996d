"""Simulate finishing a dataset on the bundled Rotten Tomatoes reviews, a packaged corpus (--corpus) or a team's own
labeled file (--data, with its --config and --guidelines) (labels = annotators): how many human labels before the
model may label the rest, and how accurate the finished dataset is. With --data or --corpus the pool is --pool items
of the set (a small test split is held out as well, which this simulation never reads).

Per strategy and seed: people label a random seed set, then batches in the strategy's order; after each batch the
served model is refit and the pool re-routed by the out-of-fold threshold (backend/loop/routing.py). The loop stops
when nothing is left below it, or when the human cost of finishing (labels so far + items below it) has not dropped
for --patience batches. Then the finish is audited: the labels so far plan a region and an audit size, people label
that many items drawn at random from the region, a fixed-sequence test on them chooses the threshold, the model
labels the rest of the region above it and people everything else. By default (--evidence ppi) each threshold's
bound is prediction-powered (the region's confidences corrected by the sample), which left people less in every
pool measured with the promise kept (docs/learning.md); --evidence audit is labelloop finish's exact test, and
--evidence sequential labels the region in batches until a test by betting passes. Every audit finishes the same
loops and is reported side by side.
`promise_kept` is the share of runs whose model-labeled part is in truth at or above --target. The same loop with
the LLM alone (its calibrated probabilities, no training) is the baseline. Rule and accounting:
backend/bench/finish_simulation.py.

Writes OUT/results.json (strategies.<name>.human_fraction, .auto_accuracy_min, .finished_accuracy_mean, per-seed
details with every step, the config, the baseline under llm_alone, the issue's goal under goal) and
OUT/finish.png (human labels against the finished dataset's accuracy), and prints a table. The LLM's outputs are
cached in --cache-dir, so a second run only simulates.

--pools 1000,3000,10000 runs each pool in turn (OUT/pool-N/) and writes OUT/pools.json (a row per pool and strategy:
the human fraction, its parts, the oracle, the promise kept) and OUT/finish_pools.png (the human fraction against
pool size). Past 5,000 tasks the loop labels a hundredth of the pool per step unless --batch says otherwise.

Examples:
  labelloop simulate-finish --pools 1000,3000,10000 --seeds 20 --no-baseline --out artifacts/finish-pools
  labelloop simulate-finish --data pilot.csv --config label_config/sentiment.xml \
      --guidelines guidelines/sentiment.md --pool 400 --seeds 3 --target 0.95 --out /tmp/finish-pilot
  labelloop simulate-finish --pool 3000 --seeds 3 --target 0.95 --out artifacts/finish
  labelloop simulate-finish --pool 500 --seeds 1 --strategies margin --out /tmp/finish
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from backend.bench import finish_simulation, reports, simulation
from backend.bench.results import FinishResults, PoolsFile
from backend.cli import (
    Parser,
    add_data_arguments,
    check_writable_dir,
    data_source,
    fraction,
    names,
    positive_int,
    reporting_errors,
)
from backend.errors import LabelloopError
from backend.files import write_json
from backend.paths import ROOT


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=positive_int, default=3000, help="pool size, stratified (default %(default)s)")
    parser.add_argument(
        "--pools",
        type=pool_sizes,
        help="several pool sizes, comma-separated (e.g. 1000,3000,10000): each simulated in turn, then a table "
        "and a plot of the human fraction against pool size (OUT/pools.json, OUT/finish_pools.png); "
        "replaces --pool",
    )
    parser.add_argument("--seeds", type=positive_int, default=3, help="repetitions, seeds 0..K-1 (default %(default)s)")
    parser.add_argument(
        "--target",
        type=fraction,
        default=0.95,
        help="accuracy the model's labels must have, as a lower confidence bound (default %(default)s)",
    )
    parser.add_argument(
        "--level", type=fraction, default=0.95, help="confidence level of that bound (default %(default)s)"
    )
    parser.add_argument(
        "--strategies",
        type=names,
        default=list(finish_simulation.DEFAULT_STRATEGIES),
        help=f"comma-separated strategies, from: {', '.join(simulation.known_strategies())} (default: %(default)s)",
    )
    parser.add_argument(
        "--kind",
        default=simulation.SERVED_SETUP,
        help=f"model kind, from: {', '.join(simulation.SETUPS)}, or "
        f"{finish_simulation.LLM_ALONE} (the LLM alone) (default: the served %(default)s)",
    )
    parser.add_argument(
        "--seed-size",
        type=positive_int,
        default=finish_simulation.SEED_SIZE,
        help="random labels to start from (default %(default)s)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        help=f"labels per step (default {finish_simulation.BATCH}, or a hundredth of a pool past "
        f"{round(finish_simulation.BATCH / finish_simulation.BATCH_SHARE)})",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        default=finish_simulation.PATIENCE,
        help="batches without a lower human cost before finishing (default %(default)s)",
    )
    parser.add_argument(
        "--budget",
        type=positive_int,
        help="most labels the loop asks for before finishing, seed set included (default: the pool)",
    )
    parser.add_argument(
        "--evidence",
        choices=finish_simulation.EVIDENCE,
        default="ppi",
        help="labels that choose the threshold: audit (at the finish, a random sample of the tasks "
        "the model proposes to label, tested in a fixed sequence: a promise valid under any "
        "ranking, as labelloop finish), sequential (the same region's tasks labeled in random order, "
        "10 at a time, until a test by betting passes: valid at any stop), ppi (audit's sample, each "
        "threshold's bound by prediction-powered inference: asymptotic only), all (every label's "
        "out-of-fold answer: the earlier rule, for comparison), or seed (the random seed set's only); "
        "with audit, sequential or ppi, every audit finishes the same loops, reported side by side "
        "(default %(default)s)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the LLM-alone baseline")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=simulation.DEFAULT_CACHE_DIR,
        help="cache of embeddings and LLM outputs (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "artifacts" / "finish",
        help="directory for results.json and finish.png (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_data_arguments(parser)
    return parser.parse_args(argv)


def pool_sizes(text: str) -> list[int]:
    sizes = [positive_int(n) for n in names(text)]
    if not sizes:
        raise argparse.ArgumentTypeError("name at least one pool size")
    return sorted(set(sizes))


def check(args: argparse.Namespace) -> None:
    """Everything that can be checked before the model loads (the data file is read and split here);
    FinishSimulationError/SimulationError/OSError/CorpusError/DataError say what is wrong. Sets args.runs: per
    pool, its batch, budget and data source."""
    simulation.check_strategies(args.strategies)
    finish_simulation.check_setup(args.kind)
    args.runs = {}
    for pool in args.pools or [args.pool]:
        batch = args.batch or finish_simulation.batch_for(pool)
        budget = pool if args.budget is None else args.budget
        finish_simulation.check_settings(pool, args.target, args.level, args.seed_size, batch, args.patience, budget)
        source = data_source(args, pool, finish_simulation.LOADER_TEST_SIZE)
        if source is None:
            simulation.check_pool(pool)
        args.runs[pool] = (batch, budget, source)
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
    by_pool: dict[int, FinishResults] = {}
    for pool, (batch, budget, source) in args.runs.items():
        by_pool[pool] = simulate(args, pool, batch, budget, source)
    if not args.pools:
        return 0
    rows = finish_simulation.pool_rows(by_pool)
    pools_path, plot_path = args.out / "pools.json", args.out / "finish_pools.png"
    pools: PoolsFile = {"rows": rows, "pools": {str(k): v for k, v in by_pool.items()}}
    write_json(pools_path, pools, indent=2)
    data = by_pool[min(by_pool)]["config"].get("data", "the bundled reviews")
    reports.plot_pools(rows, plot_path, f"Finishing against pool size: {data}, model {args.kind}, target {args.target}")
    print("\n" + reports.pool_table(rows))
    print(f"\nwrote {pools_path} and {plot_path}")
    return 0


def simulate(args: argparse.Namespace, pool: int, batch: int, budget: int, source) -> FinishResults:
    """One pool's simulation, written to OUT/results.json and OUT/finish.png (OUT/pool-N/ with --pools)."""
    started = time.perf_counter()
    try:
        inputs = simulation.load_inputs(
            pool,
            finish_simulation.LOADER_TEST_SIZE,
            args.cache_dir,
            simulation.needed_judges(args.strategies),
            progress=not args.quiet,
            source=source,
        )
        if args.kind != finish_simulation.LLM_ALONE:
            inputs.vectors(args.kind)  # an engine without hidden states cannot serve llm_state: say so now
    except OSError as e:
        raise LabelloopError(f"cache directory {args.cache_dir}: {e.strerror or e}") from None
    results = finish_simulation.finish(
        inputs,
        args.strategies,
        range(args.seeds),
        target=args.target,
        level=args.level,
        setup=args.kind,
        seed_size=args.seed_size,
        batch=batch,
        patience=args.patience,
        budget=budget,
        evidence=args.evidence,
        baseline=not args.no_baseline,
        progress=not args.quiet,
    )
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    out = args.out / f"pool-{pool}" if args.pools else args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path, plot_path = out / "results.json", out / "finish.png"
    write_json(results_path, results, indent=2)
    reports.finish_plot(results, plot_path)
    print(reports.finish_table(results))
    print(f"\nwrote {results_path} and {plot_path} ({results['wall_seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    sys.exit(main())
