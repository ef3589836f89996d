"""Time the backend's pool re-score plus write against a real Label Studio, phase by phase.

Starts Label Studio in a temporary directory (or uses --ls-url/--api-key), creates a project with
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
  python scripts/bench_rescore.py --out artifacts/bench_rescore.json
  python scripts/bench_rescore.py --tasks 2000 --runs 3 --chunk 1000
  python scripts/bench_rescore.py --ls-url http://localhost:8080 --api-key "$LABEL_STUDIO_API_KEY"
  fflag_fix_back_4620_memory_efficient_predictions_import_08012025_short=true python scripts/bench_rescore.py
"""

import sys


from backend.bench import rescore as rescore_bench


def main(argv: list[str] | None = None) -> int:
    return rescore_bench.main(argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
