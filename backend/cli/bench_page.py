"""Time the project page (GET /projects/<id>) for a project with several questions and many training runs.

Writes --runs synthetic training records of --questions questions into a temporary DATA_DIR (as a training run
writes them), starts the backend's Flask app on the tests' tiny model (the page runs no LLM), and asks for the page
once cold and --repeats times warm. Prints one JSON object: runs, questions, first_ms, median_ms, worst_ms, bytes.
Exit status 1 when the median is above --budget-ms (default 300).

examples:
  labelloop bench-page
  labelloop bench-page --runs 200 --questions 5 --repeats 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from backend.cli import Parser, positive_int, reporting_errors


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=positive_int, default=50, help="training runs recorded (default 50)")
    ap.add_argument("--questions", type=positive_int, default=3, help="questions per run (default 3)")
    ap.add_argument("--repeats", type=positive_int, default=20, help="warm requests timed (default 20)")
    ap.add_argument("--budget-ms", type=float, default=300.0, help="the median's budget in ms (default 300)")
    return ap


def run(args: argparse.Namespace) -> int:
    from backend.bench import page_load
    from backend.dev import tiny_model
    from backend.serving.app import create_app
    from backend.serving.service import Service
    from backend.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        names = tuple(f"question_{i + 1}" for i in range(args.questions))
        page_load.write_runs(Path(tmp), "1", args.runs, names)
        predictor = tiny_model.predictor()
        service = Service(Settings(data_dir=Path(tmp)), loader=lambda settings: predictor)
        service.start()
        service.predictor(wait=120)
        timing = page_load.measure(create_app(service).test_client(), "1", args.runs, args.questions, args.repeats)
    print(json.dumps(asdict(timing)))
    return 0 if timing.median_ms <= args.budget_ms else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
