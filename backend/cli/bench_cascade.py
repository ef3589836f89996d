"""Measure a 0.5B → 1.5B cascade as a trade-off: zero-shot macro-F1 against time per text, on packaged corpora.

For each --corpus, both packaged models answer a pool and a test split as the backend serves a new project (the
pool's label-free calibration), timed on the test split in this run; the cascade at each share keeps the 0.5B's
answers and takes the 1.5B's on the share of texts the 0.5B is least sure of (smallest margin). The default share
is chosen on the pool splits (the smallest keeping 70% of the 1.5B's gain at no more than 1.6x the 0.5B's time),
then read on the test splits. Writes OUT/results.json and OUT/tradeoff.png; prints a table.

The 1.5B's passes take about 7 minutes per corpus at --pool 300 --test 250 on 2 cores.

examples:
  labelloop bench-cascade --out artifacts/cascade
  labelloop bench-cascade --corpus r8 --pool 200 --test 200 --out artifacts/cascade-r8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from backend.cli import Parser, positive_int, reporting_errors

CORPORA = ("posts", "r8", "rotten_tomatoes")


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=",".join(CORPORA), help="packaged corpora, comma-separated (default: all)")
    ap.add_argument("--pool", type=positive_int, default=300, help="pool texts per corpus (default 300)")
    ap.add_argument("--test", type=positive_int, default=250, help="test texts per corpus (default 250)")
    ap.add_argument("--out", type=Path, required=True, help="folder for results.json and tradeoff.png")
    return ap


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from backend.bench import cascade, datasets
    from backend.labelstudio import schema as schemas
    from backend.learning.embeddings import Embedder

    args.out.mkdir(parents=True, exist_ok=True)
    names = [c.strip() for c in args.corpus.split(",") if c.strip()]
    embedder = Embedder()
    results: dict = {"corpora": {}}
    curves = []
    for name in names:
        source = datasets.source(args.pool, args.test, corpus_name=name)
        labels = list(schemas.parse_config(source.config).primary.labels)  # the set's labels, in the answers' order
        pool_y = np.array([labels.index(x) for x in source.pool["label"]])
        test_y = np.array([labels.index(x) for x in source.test["label"]])
        small, large = (cascade.answer(m, source, embedder.encode) for m in ("embedded", "embedded-1.5b"))
        points = cascade.curve(small, large, pool_y, test_y)
        curves.append(points)
        results["corpora"][name] = {
            "seconds_per_1000": {
                "0.5b": round(1000 * small.seconds_per_text, 1),
                "1.5b": round(1000 * large.seconds_per_text, 1),
            },
            "calibration": {"0.5b": small.methods, "1.5b": large.methods},
            "points": cascade.as_dict(points),
        }
        print(f"{name}: done", file=sys.stderr, flush=True)
    share = cascade.choose_share(curves)
    results["default_share"] = share
    results["rule"] = (
        f"smallest share keeping {cascade.KEEP:.0%} of the 1.5B's mean pool gain at <= {cascade.MOST_COST}x"
    )
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    _plot(results, args.out / "tradeoff.png")
    print(_table(results))
    return 0


def _table(results: dict) -> str:
    lines = ["corpus  share  cost(x0.5B)  pool F1  test F1"]
    for name, r in results["corpora"].items():
        for p in r["points"]:
            lines.append(
                f"{name:8} {p['share']:5.2f}  {p['cost']:10.2f}  {p['pool_macro_f1']:.3f}   {p['test_macro_f1']:.3f}"
            )
    lines.append(f"default share (chosen on the pools): {results['default_share']}")
    return "\n".join(lines)


def _plot(results: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, r in results["corpora"].items():
        points = r["points"]
        ax.plot([p["cost"] for p in points], [p["test_macro_f1"] for p in points], "o-", label=name, markersize=3)
    ax.set_xlabel("time per text, × the 0.5B's")
    ax.set_ylabel("zero-shot macro-F1 (test split)")
    ax.set_title(f"0.5B → 1.5B cascade; default share {results['default_share']}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return reporting_errors(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
