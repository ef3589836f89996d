"""Fit the LLM's per-label calibration on a labeled sample and save it where the backend finds it.

A config with one single-choice question (the default, label_config/sentiment.xml) is fitted on a labeled sample
of the Rotten Tomatoes corpus, disjoint from the benchmark's test sample; the file lands in guidelines/calibration/.
A team fits one on its own labels with --data FILE (CSV/TSV or JSONL with text and label columns, or a Label Studio
JSON export; labels must be the config's) or a packaged corpus with --corpus NAME, with the project's --config and
--guidelines (default: the corpus's, or the demo config and the GUIDELINES setting for a file): the set is split as
the benchmarks split it (labelloop compare-strategies --data ...), --test items held out first, and the fit reads
--size items of the rest (the pool), so a benchmark with the same --test still scores unseen items.
A config with several questions or a multi-label one is fitted on --sample (JSON lines with "text" and one field
per <Choices> name, a list for a multi-label question), on the items outside its --test split so the benchmark
(labelloop bench-questions) still scores unseen ones; the file lands in guidelines/calibration/forms/. Each label
of a multi-label question gets its own threshold.

Either file is used automatically (CALIBRATION=auto) while the model, the guidelines prompt and the labels stay the
same and the project's texts resemble those it was fitted on (the file keeps their MiniLM centroid; a pool whose
centroid lies below cosine 0.72 from it gets the calibration measured on its own texts instead, docs/data.md).

examples:
  labelloop calibrate
  labelloop calibrate --data team_labels.csv --config label_config/sentiment.xml \\
      --guidelines guidelines/sentiment.md --size 300 --test 200
  GUIDELINES=guidelines/review_facets.md labelloop calibrate --config label_config/review_facets.xml \\
      --sample guidelines/samples/review_facets.jsonl
"""

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from backend.bench import evaluation, questions
from backend.bench.datasets import DataError
from backend.cli import Parser, data_source, positive_int, reporting_errors
from backend.labelstudio import schema
from backend.llm import calibration as cal
from backend.llm.predictor import unfitted_calibrations
from backend.paths import DEMO_CONFIG
from backend.serving.service import load_predictor
from backend.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--size",
        type=positive_int,
        default=evaluation.CALIBRATION_SIZE,
        help="calibration sample size: of the corpus, or the pool of --data/--corpus (default %(default)s)",
    )
    parser.add_argument("--config", type=Path, help=f"labeling config (default: the corpus's, or {DEMO_CONFIG})")
    parser.add_argument("--sample", type=Path, help="labeled sample (JSON lines) for a config with several questions")
    parser.add_argument(
        "--test",
        type=positive_int,
        default=140,
        help="items of --sample, --data or --corpus kept out of the fit for the benchmark (default %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="output JSON (default guidelines/calibration/[forms/]<guidelines>.<model>[.<engine>].json)",
    )
    group = parser.add_argument_group("a team's labels (default: the bundled Rotten Tomatoes reviews)")
    group.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="a labeled file: CSV/TSV or JSONL with text and label columns, or a Label Studio JSON "
        "export; labels must be the config's (any case)",
    )
    group.add_argument(
        "--corpus", metavar="NAME", help="a public corpus installed by `make corpora`: posts, r8 or rotten_tomatoes"
    )
    group.add_argument(
        "--guidelines",
        type=Path,
        metavar="MD",
        help="the guidelines the prompt is built from (default: the corpus's, else the GUIDELINES setting)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        settings, source, config = _inputs(args)
    except DataError as e:  # a sample, config or guidelines that cannot be used: exit 2, as it always has
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not config.single and not args.sample:
        parser.error(
            f"{args.config or DEMO_CONFIG} has several questions or a multi-label one: give a labeled --sample"
        )
    return reporting_errors(lambda: _fit(args, settings, source, config))


def _inputs(args: argparse.Namespace) -> tuple:
    """The settings, the team's data source (None for the bundled corpus) and the parsed config; DataError if
    any cannot be used."""
    settings = Settings.from_env()
    source = None
    if args.data is not None or args.corpus is not None:
        if args.sample:
            raise DataError("give --data/--corpus (one question) or --sample (several), not both")
        # A file without --guidelines keeps the GUIDELINES setting, as the corpus's calibration does.
        fallback = settings.guidelines if args.data is not None else None
        source = data_source(
            argparse.Namespace(
                data=args.data, corpus=args.corpus, config=args.config, guidelines=args.guidelines or fallback
            ),
            args.size,
            args.test,
        )
        config = schema.parse_config(source.config)
        settings = replace(settings, guidelines=source.guidelines)
    else:
        config_path = args.config or DEMO_CONFIG
        try:
            config = schema.parse_config(config_path.read_text())
        except OSError as e:
            raise DataError(f"--config {config_path}: {e.strerror or e}") from None
        except ValueError as e:  # no question the backend can fill
            raise DataError(f"--config {config_path}: {e}") from None
        if args.guidelines is not None:
            if not args.guidelines.is_file():
                raise DataError(f"--guidelines {args.guidelines}: no such file")
            settings = replace(settings, guidelines=args.guidelines)
    return settings, source, config


def _fit(args: argparse.Namespace, settings: Settings, source, config: schema.Config) -> int:
    predictor = load_predictor(replace(settings, calibration="none"))
    engine = "" if settings.llm_engine == "transformers" else f".{settings.llm_engine}"  # each engine its own file
    name = f"{settings.guidelines.stem}.{predictor.source.name}{engine}.json"
    if config.single:
        # A team's set: its pool split, disjoint from the test split a benchmark with the same --test scores.
        sample = source.pool if source is not None else evaluation.splits(calibration_size=args.size)[1]
        fitted = replace(
            evaluation.fit_calibration(predictor, config.primary, sample), centroid=texts_centroid(sample["text"])
        )
        out = args.out or settings.calibration_dir / name
        out.parent.mkdir(parents=True, exist_ok=True)
        fitted.save(out)
        of = f" of {source.name} ({len(source.test)} held out)" if source is not None else ""
        print(
            f"fitted on {fitted.fitted_on} examples{of}: "
            f"bias {dict(zip(fitted.labels, (round(b, 3) for b in fitted.bias)))}"
        )
    else:
        train, _ = questions.split(questions.load_sample(args.sample), args.test)
        prompt = predictor.form_setup(config).prompt
        logprobs = predictor.scorer.label_logprobs(prompt, [item["text"] for item in train])
        unfitted = unfitted_calibrations(
            config, prompt, predictor.scorer.label_logprobs(prompt, list(cal.CONTENT_FREE))
        )
        centroid = texts_centroid([item["text"] for item in train])
        fitted_form = {
            q: replace(c, centroid=centroid)
            for q, c in questions.fit_form_calibration(config, logprobs, train, unfitted).items()
        }
        out = args.out or settings.calibration_dir / "forms" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        cal.save_form(out, fitted_form, prompt.sha256, predictor.source.identity)
        thresholds = {q: [round(t, 3) for t in c.thresholds] for q, c in fitted_form.items() if c.thresholds}
        print(f"fitted on {len(train)} items of {args.sample}; thresholds per label: {thresholds}")
    print(f"written to {out}")
    return 0


def texts_centroid(texts) -> tuple[float, ...]:
    """Where the fitted sample's texts sit (MiniLM): the backend serves the file only to pools that lie near them."""
    from backend.learning.embeddings import Embedder

    return cal.centroid(Embedder().encode(list(texts)))


if __name__ == "__main__":
    sys.exit(main())
