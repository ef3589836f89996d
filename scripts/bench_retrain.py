#!/usr/bin/env python3
"""Time a retrain from the event to the decision, with --labels labels in a real Label Studio.

Starts Label Studio on a free port in a temporary directory, imports --labels Rotten Tomatoes reviews with their
corpus label as an annotation, and runs the backend's training run (backend/loop.py) in this process with the
packaged model. The first run fills the embedding and LLM caches (minutes: the LLM scores every text once); the
next --runs runs are timed as the backend meets them after a webhook: fetch the labels from Label Studio,
cross-validate the candidate, compare it with the serving model, fit and save. Target: at most 1 s at 1,000 labels.

examples:
  python scripts/bench_retrain.py
  python scripts/bench_retrain.py --labels 300 --runs 3
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend import corpus, ls_server  # noqa: E402
from backend import project_sync as sync  # noqa: E402
from backend.guidelines import DEFAULT_GUIDELINES as GUIDELINES  # noqa: E402
from backend.ls_client import connect  # noqa: E402
from backend.metrics import Metrics  # noqa: E402
from backend.service import DEFAULT_CONFIG, load_predictor  # noqa: E402
from backend.settings import Settings  # noqa: E402


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=_positive, default=1000, help="labeled tasks (default 1000)")
    ap.add_argument("--runs", type=_positive, default=5, help="timed runs after the warm-up (default 5)")
    args = ap.parse_args(argv)
    if not ls_server.available():
        print(f"error: Label Studio is not installed ({ls_server.LS_BIN}): run `make labelstudio`", file=sys.stderr)
        return 2

    from backend.loop import Loop

    df = corpus.stratified_split(corpus.load(), [args.labels], seed=5)[0]
    with tempfile.TemporaryDirectory() as tmp, ls_server.LabelStudioServer(
        Path(tmp) / "ls", port=ls_server.free_port(), admin_password="bench-pass-1234"
    ) as ls:
        client = connect(ls.url, ls.admin.token).client
        project = sync.ensure_project(client, "retrain benchmark", DEFAULT_CONFIG, GUIDELINES).id
        tasks = [
            {
                "data": {"text": text},
                "annotations": [{"result": [{"from_name": "sentiment", "to_name": "review", "type": "choices",
                                             "value": {"choices": [label]}}]}],
            }
            for text, label in zip(df["text"], df["label"])
        ]
        client.projects.import_tasks(id=project, request=tasks)
        settings = Settings(data_dir=Path(tmp) / "data", label_studio_url=ls.url, label_studio_api_key=ls.admin.token)
        predictor = load_predictor(settings)
        loop = Loop(settings, lambda: predictor, Metrics())
        started = time.perf_counter()
        warm = loop.train(str(project))
        print(f"warm-up (fills the caches): {time.perf_counter() - started:.1f} s, {warm['result']}, "
              f"cv macro-F1 {warm.get('cv_macro_f1')} vs LLM {warm.get('llm_macro_f1')}")
        loop.rescoring.wait(str(project), timeout=600)
        totals, fetches, fits = [], [], []
        for _ in range(args.runs):
            record = loop.train(str(project))
            totals.append(record["seconds"])
            fits.append(record["fit_seconds"])
            fetches.append(record["seconds"] - record["fit_seconds"])
        print(f"\n{args.labels} labels, {args.runs} timed runs (median, max):")
        print(f"  fetch from Label Studio   {statistics.median(fetches):6.3f} s  {max(fetches):6.3f} s")
        print(f"  cross-validate, fit, save {statistics.median(fits):6.3f} s  {max(fits):6.3f} s")
        print(f"  event to decision         {statistics.median(totals):6.3f} s  {max(totals):6.3f} s   (target <= 1 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
