"""Fit the LLM's per-label calibration on a labeled sample and save it where the backend finds it.

A config with one single-choice question (the default, label_config/sentiment.xml) is fitted on a labeled sample
of the Rotten Tomatoes corpus, disjoint from the benchmark's test sample; the file lands in guidelines/calibration/.
A config with several questions or a multi-label one is fitted on --sample (JSON lines with "text" and one field
per <Choices> name, a list for a multi-label question), on the items outside its --test split so the benchmark
(scripts/bench_questions.py) still scores unseen ones; the file lands in guidelines/calibration/forms/. Each label
of a multi-label question gets its own threshold.

Either file is used automatically (CALIBRATION=auto) while the model, the guidelines prompt and the labels stay the
same; a change to any of them makes the backend fall back to contextual calibration until this is run again.

examples:
  python scripts/calibrate.py
  GUIDELINES=guidelines/review_facets.md python scripts/calibrate.py --config label_config/review_facets.xml \\
      --sample guidelines/samples/review_facets.jsonl
"""

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from backend.bench import evaluation, questions
from backend.cli import Parser, positive_int
from backend.labelstudio import schema
from backend.llm import calibration as cal
from backend.llm.predictor import unfitted_calibrations
from backend.paths import DEMO_CONFIG
from backend.serving.service import load_predictor
from backend.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=evaluation.CALIBRATION_SIZE, help="calibration sample size (default %(default)s)")
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="labeling config (default %(default)s)")
    parser.add_argument("--sample", type=Path, help="labeled sample (JSON lines) for a config with several questions")
    parser.add_argument("--test", type=positive_int, default=140,
                        help="items of --sample kept out of the fit for the benchmark (default %(default)s)")
    parser.add_argument("--out", type=Path, help="output JSON (default guidelines/calibration/[forms/]<guidelines>.<model>[.<engine>].json)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env()
    config = schema.parse_config(args.config.read_text())
    if not config.single and not args.sample:
        parser.error(f"{args.config} has several questions or a multi-label one: give a labeled --sample")
    predictor = load_predictor(replace(settings, calibration="none"))
    engine = "" if settings.llm_engine == "transformers" else f".{settings.llm_engine}"  # each engine its own file
    name = f"{settings.guidelines.stem}.{predictor.source.name}{engine}.json"
    if config.single:
        _, sample = evaluation.splits(calibration_size=args.size)
        fitted = evaluation.fit_calibration(predictor, config.primary, sample)
        out = args.out or settings.calibration_dir / name
        out.parent.mkdir(parents=True, exist_ok=True)
        fitted.save(out)
        print(f"fitted on {fitted.fitted_on} examples: bias {dict(zip(fitted.labels, (round(b, 3) for b in fitted.bias)))}")
    else:
        train, _ = questions.split(questions.load_sample(args.sample), args.test)
        prompt = predictor.form_setup(config).prompt
        logprobs = predictor.scorer.label_logprobs(prompt, [item["text"] for item in train])
        unfitted = unfitted_calibrations(config, prompt, predictor.scorer.label_logprobs(prompt, list(cal.CONTENT_FREE)))
        fitted_form = questions.fit_form_calibration(config, logprobs, train, unfitted)
        out = args.out or settings.calibration_dir / "forms" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        cal.save_form(out, fitted_form, prompt.sha256, predictor.source.identity)
        thresholds = {q: [round(t, 3) for t in c.thresholds] for q, c in fitted_form.items() if c.thresholds}
        print(f"fitted on {len(train)} items of {args.sample}; thresholds per label: {thresholds}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
