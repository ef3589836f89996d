"""Time labelloop finish on a project of a team's size against a real Label Studio, step by step, with a kill -9 in
the middle of --apply.

Starts Label Studio in a temporary directory (--database; or uses --ls-url/--api-key), creates a project with the
demo's sentiment config and imports --tasks corpus reviews, the first --labeled with a person's label. Then, each
step the command as a user runs it, in its own process: plan (finish --apply draws the audit and keeps its tab),
people label the audit (here: the corpus's labels), apply killed with SIGKILL once --kill-at of its writes are
sent, apply again (checked: the file and Label Studio agree, one model label per task, the people's all there, no
label set left), undo (checked: no model label left), and apply uninterrupted (checked again). Printed: seconds per
step and the checks. By default the model is the tests' tiny random Qwen2 (fast; a low --target lets it label most of
the pool, which times the writes); --real-model uses the packaged model (its first pass over 10,000 texts takes about
8 minutes on 2 cores; later steps read the per-text cache).
Exit status: 0 if every check passed, 1 if not or on an error, 2 for bad arguments.

examples:
  labelloop bench-finish --out artifacts/bench_finish.json
  labelloop bench-finish --tasks 2000 --labeled 300 --database postgresql
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from backend.bench import finish_scale
from backend.cli import Parser, fraction, positive_int, reporting_errors


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=positive_int, default=10_000, help="tasks in the project (default %(default)s)")
    ap.add_argument(
        "--labeled", type=positive_int, default=1000, help="of them labeled by people first (default %(default)s)"
    )
    ap.add_argument(
        "--target",
        type=fraction,
        default=0.3,
        help="finish's --target (default %(default)s: the tiny model's level, so that it labels most of the pool)",
    )
    ap.add_argument(
        "--kill-at",
        type=fraction,
        default=0.6,
        help="share of --apply's write progress at which it is killed with SIGKILL (default %(default)s)",
    )
    ap.add_argument("--real-model", action="store_true", help="the packaged model instead of the tiny random one")
    ap.add_argument(
        "--database",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="the database of the Label Studio started here (default %(default)s; ignored with --ls-url)",
    )
    ap.add_argument("--ls-url", default="", help="use this running Label Studio (with --api-key); a project is left")
    ap.add_argument("--api-key", default="", help="a Personal Access Token (or legacy token) for --ls-url")
    ap.add_argument("--out", type=Path, help="also write every figure as JSON to this file")
    ap.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    if bool(args.ls_url) != bool(args.api_key):
        ap.error("give both --ls-url and --api-key, or neither (a fresh Label Studio is started)")
    if args.labeled >= args.tasks:
        ap.error(f"--labeled ({args.labeled}) must be below --tasks ({args.tasks})")
    if args.out and not args.out.parent.is_dir():
        ap.error(f"--out: directory {args.out.parent} does not exist")
    return reporting_errors(lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    from backend.dev import labelstudio as ls_server

    options = dict(
        tasks=args.tasks,
        labeled=args.labeled,
        target=args.target,
        kill_at=args.kill_at,
        real_model=args.real_model,
        progress=not args.no_progress,
    )
    if args.ls_url:
        result = finish_scale.run(args.ls_url.rstrip("/"), args.api_key, **options)
    else:
        with ls_server.temporary(args.database, not args.no_progress) as ls:
            result = finish_scale.run(ls.url, ls.admin.token, **options)
            result["database"] = args.database
    print(finish_scale.report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"figures written to {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
