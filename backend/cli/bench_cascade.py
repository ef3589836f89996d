"""Measure the 0.5B → 1.5B cascade as it serves (LLM_MODEL=cascade) as a trade-off: zero-shot macro-F1 against time
per text, and macro-F1 after 100 random labels, on packaged corpora.

For each --corpus, both packaged models read a pool and a test split as the backend serves a new project (the
pool's label-free calibration, the 0.5B's hidden state), each timed on the test split in this run. The student is
fitted as the cascade fits it (the 0.5B's state against the 1.5B's answers on the pool's calibration sample, no label
read); the cascade at each share answers with the student and takes the 1.5B's answers on the texts below that
quantile of the student's margins. The student's C and the default share are chosen on the pool rows outside the
sample (the share: the smallest keeping 70% of the 1.5B's gain over the 0.5B at no more than 1.6x the 0.5B's
time), then read on the test splits. Writes OUT/results.json and OUT/tradeoff.png; prints a table.

The 1.5B's passes take about 6 minutes per corpus at --pool 600 --test 250 on 2 cores.

examples:
  labelloop bench-cascade --out artifacts/cascade
  labelloop bench-cascade --data team_labels.csv --config label_config/sentiment.xml --out artifacts/cascade-team
  labelloop bench-cascade --corpus r8 --pool 400 --test 200 --out artifacts/cascade-r8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from backend.bench.results import CascadeResults
from backend.cli import Parser, positive_int, reporting_errors

CORPORA = ("posts", "r8", "rotten_tomatoes")


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=",".join(CORPORA), help="packaged corpora, comma-separated (default: all)")
    ap.add_argument(
        "--data",
        type=Path,
        metavar="FILE",
        help="a team's labeled file instead of the corpora (CSV/TSV or JSONL with text and label columns, or a Label "
        "Studio JSON export), scored with --config and --guidelines (default: the demo's)",
    )
    ap.add_argument("--config", type=Path, metavar="XML", help="with --data: the labeling config")
    ap.add_argument(
        "--guidelines", type=Path, metavar="MD", help="with --data: the guidelines the prompt is built from"
    )
    ap.add_argument(
        "--pool",
        type=positive_int,
        default=600,
        help="pool texts per corpus, the sample's 256 among them (default 600)",
    )
    ap.add_argument("--test", type=positive_int, default=250, help="test texts per corpus (default 250)")
    ap.add_argument(
        "--seeds", type=positive_int, default=3, help="random label draws per learning-curve point (default 3)"
    )
    ap.add_argument("--out", type=Path, required=True, help="folder for results.json and tradeoff.png")
    return ap


def run(args: argparse.Namespace) -> int:
    from backend.bench import cascade, datasets

    args.out.mkdir(parents=True, exist_ok=True)
    if args.data is None:
        if args.config or args.guidelines:
            raise datasets.DataError("--config and --guidelines go with --data FILE")
        sources = {c.strip(): {"corpus_name": c.strip()} for c in args.corpus.split(",") if c.strip()}
    else:
        sources = {args.data.stem: {"data": args.data, "config": args.config, "guidelines": args.guidelines}}
    read = {name: datasets.source(args.pool, args.test, **named) for name, named in sources.items()}  # checked first
    seeds = range(args.seeds)
    measured = {}
    for name, source in read.items():
        measured[name] = cascade.measure(source, args.pool, args.test)
        print(f"{name}: both models read", file=sys.stderr, flush=True)
    # The rules read the pools only: the readout's C, then the share.
    alone = {
        c: [cascade.curve(m, c, shares=())[0].pool_macro_f1 for m in measured.values()] for c in cascade.STUDENT_CS
    }
    c = cascade.choose_c(alone)
    results: CascadeResults = {
        "student_c": c,
        "student_alone_pool_macro_f1": {str(k): v for k, v in alone.items()},
        "corpora": {},
    }
    curves, small = [], []
    for name, m in measured.items():
        base = cascade.baselines(m, seeds)
        points = cascade.curve(m, c, seeds=seeds)
        curves.append(points)
        small.append(base["0.5b"])
        results["corpora"][name] = {
            "seconds_per_1000": {"0.5b": round(1000 * m.seconds[0], 1), "1.5b": round(1000 * m.seconds[1], 1)},
            "calibration": {"0.5b": m.small.info["calibration"], "1.5b": m.large.info["calibration"]},
            "pool_rows_read": len(m.held),
            "baselines": dict(zip(base, cascade.as_dict(list(base.values())))),
            "points": cascade.as_dict(points),
        }
    share = cascade.choose_share(curves, small)
    results["default_share"] = share
    results["rule"] = (
        f"student C: the best mean pool macro-F1 of the student alone among {list(cascade.STUDENT_CS)}; share: the "
        f"smallest keeping {cascade.KEEP:.0%} of the 1.5B's mean pool gain over the 0.5B at <= {cascade.MOST_COST}x"
    )
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    _plot(results, args.out / "tradeoff.png")
    print(_table(results))
    return 0


def _table(results: CascadeResults) -> str:
    lines = [
        f"student C {results['student_c']}",
        "corpus   share         cost(x0.5B)  pool F1  test F1  after 100 labels",
    ]
    for name, r in results["corpora"].items():
        rows = [("0.5B alone", r["baselines"]["0.5b"]), ("1.5B alone", r["baselines"]["1.5b"])]
        rows += [("student" if p["share"] == 0 else f"cascade {p['share']:.2f}", p) for p in r["points"][:-1]]
        for label, p in rows:
            after = "-" if p["after_labels"] is None else f"{p['after_labels']:.3f}"
            lines.append(
                f"{name:8} {label:13} {p['cost']:11.2f}  {p['pool_macro_f1']:.3f}    {p['test_macro_f1']:.3f}    {after}"
            )
    lines.append(f"default share (chosen on the pools): {results['default_share']}")
    return "\n".join(lines)


def _plot(results: CascadeResults, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, r in results["corpora"].items():
        points = r["points"]
        line = ax.plot([p["cost"] for p in points], [p["test_macro_f1"] for p in points], "o-", label=name, ms=3)[0]
        small = r["baselines"]["0.5b"]
        ax.plot([small["cost"]], [small["test_macro_f1"]], "s", color=line.get_color(), ms=6, mfc="none")
    ax.set_xlabel("time per text, × the 0.5B's")
    ax.set_ylabel("zero-shot macro-F1 (test split)")
    ax.set_title(
        f"0.5B → 1.5B cascade (student first; squares: the 0.5B alone); default share {results['default_share']}",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
