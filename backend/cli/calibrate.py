"""Fit the LLM's per-label calibration on a labeled sample of the Rotten Tomatoes corpus and save it.

The sample is disjoint from the benchmark's test sample. The file lands in guidelines/calibration/ and is used
automatically (CALIBRATION=auto) while the model, the guidelines prompt and the labels stay the same; a change
to any of them makes the backend fall back to contextual calibration until this is run again.
"""

import argparse
import logging
import sys
from pathlib import Path


from backend.bench import evaluation
from backend.labelstudio import schema
from backend.paths import DEMO_CONFIG
from backend.serving.service import load_predictor
from backend.settings import Settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=evaluation.CALIBRATION_SIZE, help="calibration sample size (default %(default)s)")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="labeling config (default %(default)s)")
    parser.add_argument("--out", type=Path, help="output JSON (default guidelines/calibration/<guidelines>.<model>[.<engine>].json)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env()
    predictor = load_predictor(Settings(**{**settings.__dict__, "calibration": "none"}))
    parsed = schema.parse(args.config.read_text())
    _, sample = evaluation.splits(calibration_size=args.size)
    fitted = evaluation.fit_calibration(predictor, parsed, sample)
    engine = "" if settings.llm_engine == "transformers" else f".{settings.llm_engine}"  # each engine its own file
    out = args.out or settings.calibration_dir / f"{settings.guidelines.stem}.{predictor.source.name}{engine}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    fitted.save(out)
    print(f"fitted on {fitted.fitted_on} examples: bias {dict(zip(fitted.labels, (round(b, 3) for b in fitted.bias)))}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
