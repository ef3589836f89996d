"""Gold tasks: hide them in a batch of tasks, then measure each annotator's accuracy on them over time.

  inject  mixes gold tasks into a task file, K in every block of N tasks (default 5/50) at seeded random positions;
          a gold task looks like any other (only the text, no label or flag), and the answers stay in the gold file.
  drift   reads a Label Studio JSON export and reports, per annotator, accuracy on gold (overall and in a sliding
          window), Cohen's kappa against gold and the confusion of their errors, flagging anyone below the
          threshold or falling. Exit 1 when an annotator is flagged (for CI), 0 when none is.

Exit code 2 and one "error:" line on stderr for bad input (missing file, invalid JSON, bad rate).

examples:
  labelloop gold inject batch.json --out batch_with_gold.json
  labelloop gold inject reviews.csv --gold my_gold.csv --rate 3/40 --seed 7 --out import.json
  labelloop gold drift export.json
  labelloop gold drift export.json --window 10 --threshold 0.8 --format json --plot drift.png
"""

import argparse
import json
import sys
from pathlib import Path

from backend.cli import Parser, reporting_errors
from backend.labelstudio import schema as schemas
from backend.labelstudio import task_files
from backend.labelstudio.export import labels_from_config
from backend.quality import drift, gold


def _labels(args: argparse.Namespace) -> tuple[str | None, list[str], bool]:
    """The Choices tag (--from-name, else the first), its labels and whether it is multi-label, from --config; else
    no tag (guessed from the export), the corpus labels, single choice."""
    if args.config:
        name, labels = labels_from_config(args.config, args.from_name)
        return name, labels, schemas.is_multiple(args.config.read_text(encoding="utf-8-sig"), name)
    return args.from_name, list(gold.LABELS), False


def _inject(args: argparse.Namespace) -> int:
    _, labels, multiple = _labels(args)
    gold_set = gold.load_gold(args.gold, labels, multiple)
    rate = gold.parse_rate(args.rate)
    # The import hash is dropped: gold tasks have none, and a column only real tasks fill would give gold away.
    # sync_project.py import computes it again for every task.
    tasks = [
        {**t, "data": {k: v for k, v in t["data"].items() if k != task_files.HASH_KEY}}
        for t in task_files.read_tasks(args.tasks, args.text_key)
    ]
    stream = gold.inject_gold(tasks, gold_set, rate, seed=args.seed, text_key=args.text_key)
    try:
        args.out.write_text(json.dumps(stream, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise gold.GoldError(f"cannot write {args.out}: {exc.strerror or exc}") from None

    n_gold = len(stream) - len(tasks)
    print(
        f"wrote {args.out}: {len(stream)} tasks, {n_gold} of them gold (rate {rate[0]}/{rate[1]}, seed {args.seed})",
        file=sys.stderr,
    )
    already = sum(gold_set.is_gold(t["data"].get(args.text_key)) for t in tasks)
    if already:
        print(
            f"note: {already} task(s) in {args.tasks} already hold a gold text; drift will count them as gold",
            file=sys.stderr,
        )
    extra = gold.extra_data_fields(tasks, args.text_key)
    if extra:
        print(
            f"note: the tasks carry data fields besides {args.text_key!r} ({', '.join(extra)}); gold tasks do not, "
            "so hide those columns from annotators in the Data Manager",
            file=sys.stderr,
        )
    return 0


def _drift(args: argparse.Namespace) -> int:
    from_name, labels, multiple = _labels(args)
    gold_set = gold.load_gold(args.gold, labels, multiple)
    report = drift.drift_report(
        args.export,
        gold_set,
        window=args.window,
        threshold=args.threshold,
        drop=args.drop,
        from_name=from_name,
        text_key=args.text_key,
        multiple=multiple,
    )
    if args.label_issues:
        drift.join_label_issues(report, args.label_issues)
    if args.plot:
        drift.plot_drift(report, args.plot)
    if args.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False, allow_nan=False))
    else:
        print(drift.format_table(report))
    if report["flagged"]:
        # On stderr, so with --format json stdout holds only the JSON object.
        print(f"{len(report['flagged'])} annotator(s) flagged: {', '.join(report['flagged'])}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    inject = commands.add_parser(
        "inject",
        help="mix gold tasks into a task file for Label Studio import",
        description="Mix gold tasks into TASKS_FILE and write a JSON list ready for Label Studio import. Original "
        "tasks keep their order; K gold tasks go to seeded random positions in every block of N.\n\n"
        "examples:\n"
        "  labelloop gold inject batch.json --out batch_with_gold.json\n"
        "  labelloop gold inject reviews.csv --rate 3/40 --seed 7 --out import.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inject.add_argument(
        "tasks",
        type=Path,
        metavar="TASKS_FILE",
        help='tasks: a JSON list or JSONL of {"data": {"text": ...}} (or flat {"text": ...}) '
        "objects, or a CSV file with a text column",
    )
    inject.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="where to write the JSON list to import, e.g. --out import.json",
    )
    inject.add_argument(
        "--rate",
        default="5/50",
        metavar="K/N",
        help="K gold tasks in every block of N tasks, 1 <= K < N, e.g. --rate 3/40 (default %(default)s)",
    )
    inject.add_argument(
        "--seed", type=int, default=0, help="seed of the gold positions and order, e.g. --seed 7 (default %(default)s)"
    )

    report = commands.add_parser(
        "drift",
        help="per-annotator accuracy on gold over time; exit 1 if anyone is flagged",
        description=drift.__doc__ + "\nexamples:\n  labelloop gold drift export.json\n"
        "  labelloop gold drift export.json --format json --plot drift.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("export", type=Path, metavar="EXPORT", help="the Label Studio JSON export, e.g. export.json")
    report.add_argument(
        "--window",
        type=int,
        default=drift.DEFAULT_WINDOW,
        metavar="N",
        help="gold answers per sliding window, e.g. --window 20 (default %(default)s)",
    )
    report.add_argument(
        "--threshold",
        type=float,
        default=drift.DEFAULT_THRESHOLD,
        metavar="ACC",
        help="flag accuracy (overall or latest window) below this, e.g. --threshold 0.9 (default %(default)s)",
    )
    report.add_argument(
        "--drop",
        type=float,
        default=drift.DEFAULT_DROP,
        metavar="D",
        help="flag as falling when the latest window is at least D below the first, e.g. --drop 0.2 "
        "(default %(default)s)",
    )
    report.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="output: a readable table (default) or exactly one JSON object, e.g. --format json",
    )
    report.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="also draw windowed accuracy per annotator into a PNG, e.g. --plot drift.png",
    )
    report.add_argument(
        "--label-issues",
        type=Path,
        metavar="FILE.json",
        help="join each annotator's rate of flagged labels from labelloop label-issues --format json "
        "(table column, JSON rows' label_issues, a panel of the plot)",
    )

    for sub in (inject, report):
        sub.add_argument(
            "--gold",
            type=Path,
            default=gold.DEFAULT_GOLD,
            metavar="FILE",
            help="the gold file (JSONL, JSON list or CSV with text,label), e.g. --gold my_gold.csv "
            "(default guidelines/gold/sentiment.jsonl)",
        )
        sub.add_argument(
            "--config",
            type=Path,
            metavar="FILE",
            help="labeling config XML whose <Choices> gives the allowed labels (and the tag to read), "
            "e.g. --config label_config/sentiment.xml (default: Positive, Negative, Neutral); "
            'a multi-label <Choices> (choice="multiple") takes gold labels as lists',
        )
        sub.add_argument(
            "--from-name",
            metavar="NAME",
            help="the <Choices> of --config to read when it has several, e.g. --from-name aspects (default: the first)",
        )
        sub.add_argument(
            "--text-key",
            default=gold.DEFAULT_TEXT_KEY if sub is inject else None,
            metavar="KEY",
            help="the task data field holding the text, e.g. --text-key review "
            f"(default: {'text' if sub is inject else 'text, else the first text field'})",
        )
    inject.set_defaults(run=_inject)
    report.set_defaults(run=_drift)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return reporting_errors(lambda: args.run(args), status=2)


if __name__ == "__main__":
    sys.exit(main())
