"""Time a retrain from the event to the decision, with --labels labels in a real Label Studio.

Starts Label Studio on a free port in a temporary directory, imports --labels Rotten Tomatoes reviews with their
corpus label as an annotation, and runs the backend's training run (backend/loop/project_loop.py) in this process with the
packaged model. The first run fills the embedding and LLM caches (minutes: the LLM scores every text once); the
next --runs runs are timed as the backend meets them after a webhook: fetch the labels from Label Studio,
cross-validate the candidate, compare it with the serving model, fit and save. Target: at most 1 s at 1,000 labels
after an annotation event (the run re-reads only the tasks named by events since the last run).

examples:
  labelloop bench-retrain
  labelloop bench-retrain --labels 300 --runs 3
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backend import corpus
from backend.cli import Parser, reporting_errors
from backend.dev import labelstudio as ls_server
from backend.dev.processes import free_port
from backend.guidelines import DEFAULT_GUIDELINES as GUIDELINES
from backend.labelstudio import sync
from backend.labelstudio.client import connect
from backend.llm.weights import default_cache_dir
from backend.metrics import Metrics
from backend.paths import DEMO_CONFIG
from backend.serving.service import load_predictor
from backend.settings import Settings


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", type=_positive, default=1000, help="labeled tasks (default 1000)")
    ap.add_argument("--runs", type=_positive, default=5, help="timed runs after the warm-up (default 5)")
    ap.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir() / "bench-retrain",
        help="embedding and LLM caches kept between runs (default %(default)s)",
    )
    args = ap.parse_args(argv)
    if not ls_server.available():
        print(f"error: Label Studio is not installed ({ls_server.LS_BIN}): run `make labelstudio`", file=sys.stderr)
        return 2
    return reporting_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from backend.loop.project_loop import Loop

    df = corpus.stratified_split(corpus.load(), [args.labels], seed=5)[0]
    with (
        tempfile.TemporaryDirectory() as tmp,
        ls_server.LabelStudioServer(Path(tmp) / "ls", port=free_port(), admin_password="bench-pass-1234") as ls,
    ):
        client = connect(ls.url, ls.admin.token).client
        project = sync.ensure_project(client, "retrain benchmark", DEMO_CONFIG, GUIDELINES).id
        tasks = [
            {
                "data": {"text": text},
                "annotations": [
                    {
                        "result": [
                            {
                                "from_name": "sentiment",
                                "to_name": "review",
                                "type": "choices",
                                "value": {"choices": [label]},
                            }
                        ]
                    }
                ],
            }
            for text, label in zip(df["text"], df["label"])
        ]
        client.projects.import_tasks(id=project, request=tasks)
        # Fresh models every run, but the per-text caches are kept between runs: filling them is the slow part.
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        args.cache_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "cache").symlink_to(args.cache_dir.resolve())
        settings = Settings(data_dir=data_dir, label_studio_url=ls.url, label_studio_api_key=ls.admin.token)
        predictor = load_predictor(settings)
        loop = Loop(settings, lambda: predictor, Metrics())
        started = time.perf_counter()
        warm = loop.train(str(project))
        print(
            f"warm-up (fills the caches): {time.perf_counter() - started:.1f} s, {warm['result']}, "
            f"cv macro-F1 {warm.get('cv_macro_f1')} vs LLM {warm.get('llm_macro_f1')}"
        )
        loop.rescoring.wait(str(project), timeout=600)
        # An annotation event names its task: the run re-reads that task only. "Start training" (no task) and
        # deletions re-read every labeled task; both are timed from the request to the decision.
        task_ids = [t.id for t in client.tasks.list(project=project, fields="task_only", page_size=1000)]
        rows = []
        for kind, task in [("annotation event", task_ids[i]) for i in range(args.runs)] + [("full re-read", None)] * 2:
            started = time.perf_counter()
            loop.request_training(str(project), task)
            loop.training.wait(str(project))
            total = time.perf_counter() - started
            record = loop.projects.versions(str(project))[-1]
            rows.append((kind, total, total - record["fit_seconds"], record["fit_seconds"], record["result"]))
            loop.rescoring.wait(str(project), timeout=600)
        print(f"\n{args.labels} labels; seconds from the request to the decision (target <= 1 s after an event):")
        print(f"  {'run':18s} {'total':>7s} {'fetch':>7s} {'fit':>7s}  decision")
        for kind, total, fetch, fit, result in rows:
            print(f"  {kind:18s} {total:7.3f} {fetch:7.3f} {fit:7.3f}  {result}")
        events = [r[1] for r in rows if r[0] == "annotation event"]
        print(f"  median after an annotation event: {statistics.median(events):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
