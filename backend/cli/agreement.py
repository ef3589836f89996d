"""Inter-annotator agreement of a Label Studio export (JSON, JSON-MIN or CSV).

Reports Cohen's kappa for every pair of annotators, Fleiss' kappa (items labeled by everyone), Krippendorff's
alpha (nominal, missing labels allowed), percent agreement (items with 2+ labels where all agree) and per-label
specific agreement, with bootstrap 95% intervals and Landis & Koch bands. Cancelled annotations, predictions and
synthetic tasks (data.synthetic or meta.synthetic) are left out and counted; an annotator's latest annotation of a
task wins. The format is taken from the file: *.csv is a CSV export, anything else JSON or JSON-MIN.

Exit codes: 0 done, 1 the --min-kappa gate failed, 2 the input could not be read (one "error:" line on stderr).
The gate's verdict is one line on stderr, so with --format json stdout holds only the JSON object.

examples:
  labelloop agreement export.json
  labelloop agreement export.json --config label_config/sentiment.xml --format json
  labelloop agreement export-min.json --from-name sentiment --labels Positive,Negative,Neutral
  labelloop agreement pilot.csv --min-kappa 0.8 --gate-on fleiss --disagreements adjudicate.csv
  labelloop agreement export.json --config label_config/review_facets.xml --from-name aspects

A multi-label <Choices> (choice="multiple" in --config, or --multi-label) is read as the set of labels each
annotator chose: Krippendorff's alpha with the MASI set distance, exact-set agreement, and per label Cohen's kappa
per pair, Fleiss' kappa and alpha on whether it applies. --min-kappa then gates on the MASI alpha.
"""

import argparse
import json
import sys
from pathlib import Path

from backend.cli import Parser, reporting_errors
from backend.labelstudio import schema as schemas
from backend.labelstudio.export import ExportError, labels_from_config, load_export
from backend.quality import agreement


def _parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", type=Path, help="the Label Studio export file, e.g. export.json or export.csv")
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="output: a readable table (default) or exactly one JSON object, e.g. --format json",
    )
    parser.add_argument(
        "--from-name",
        metavar="NAME",
        help="the Choices tag to read (JSON) or the label column (JSON-MIN/CSV), e.g. --from-name "
        "sentiment; default: the first choices region, or the column guessed from the labels",
    )
    parser.add_argument(
        "--labels",
        metavar="A,B,C",
        help="the labels the config allows, others are counted as out of config and dropped, "
        "e.g. --labels Positive,Negative,Neutral",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="labeling config XML to take the labels (and the tag) from its <Choices>, "
        "e.g. --config label_config/sentiment.xml",
    )
    parser.add_argument(
        "--multi-label",
        action="store_true",
        help="read the tag as multi-label (each annotation's set of labels); implied by a --config "
        'whose <Choices> has choice="multiple"',
    )
    parser.add_argument(
        "--text-key",
        metavar="KEY",
        help="the task data field shown as text in --disagreements, e.g. --text-key review; "
        "default: the first text field",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% intervals, 0 turns them off, e.g. --bootstrap 200 (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed of the bootstrap, e.g. --seed 7 (default %(default)s)"
    )
    parser.add_argument(
        "--min-kappa",
        type=float,
        metavar="TARGET",
        help="pilot gate: exit 1 if the --gate-on statistic is below TARGET or null, e.g. "
        "--min-kappa 0.8 (default: no gate)",
    )
    parser.add_argument(
        "--gate-on",
        choices=agreement.GATES,
        default="min-pairwise",
        help="statistic the gate checks: min-pairwise (lowest defined pairwise Cohen's kappa, "
        "default), fleiss or alpha, e.g. --gate-on alpha",
    )
    parser.add_argument(
        "--disagreements",
        type=Path,
        metavar="FILE.csv",
        help="write each item where annotators disagree (task id, text, one label column per "
        "annotator) for adjudication, e.g. --disagreements adjudicate.csv",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.bootstrap < 0:
        print("error: --bootstrap must be 0 or more", file=sys.stderr)
        return 2
    return reporting_errors(lambda: _report(args), status=2)


def _report(args: argparse.Namespace) -> int:
    from_name, labels = args.from_name, None
    if args.labels and args.config:
        raise ExportError("give --labels or --config, not both")
    if args.labels:
        labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    multiple = args.multi_label
    if args.config:
        from_name, labels = labels_from_config(args.config, args.from_name)
        multiple = multiple or schemas.is_multiple(args.config.read_text(encoding="utf-8-sig"), from_name)
    dataset = load_export(args.export, from_name=from_name, labels=labels, text_key=args.text_key, multiple=multiple)
    if multiple:
        return _multilabel(args, dataset)
    report = agreement.analyse(dataset, bootstrap=args.bootstrap, seed=args.seed)
    if args.disagreements:
        agreement.write_disagreements(dataset, args.disagreements)

    passed = True
    if args.min_kappa is not None:
        passed, message = agreement.check_gate(report, args.min_kappa, args.gate_on)
        report["gate"] = {"statistic": args.gate_on, "target": args.min_kappa, "passed": passed, "message": message}
    if args.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(agreement.format_table(report))
    if args.min_kappa is not None:
        print(report["gate"]["message"], file=sys.stderr)
    return 0 if passed else 1


def _multilabel(args, dataset) -> int:
    if args.disagreements:
        print("error: --disagreements is for single-choice tags", file=sys.stderr)
        return 2
    report = agreement.analyse_multilabel(dataset)
    passed = True
    if args.min_kappa is not None:
        alpha = report["krippendorff_alpha_masi"]
        passed = alpha is not None and alpha >= args.min_kappa
        shown = "null" if alpha is None else f"{alpha:.3f}"
        message = (
            f"gate {'passed' if passed else 'failed'}: Krippendorff's alpha (MASI) {shown} against {args.min_kappa}"
        )
        report["gate"] = {"statistic": "alpha-masi", "target": args.min_kappa, "passed": passed, "message": message}
    print(
        json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False)
        if args.format == "json"
        else agreement.format_multilabel_table(report)
    )
    if args.min_kappa is not None:
        print(report["gate"]["message"], file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
