"""Run the whole labeling loop locally: Label Studio and the labelloop backend on 127.0.0.1, with a project
"Movie review sentiment" of Rotten Tomatoes reviews, each pre-annotated by the model.

Prints the URL, the login and the start-up timings, then keeps both servers running until Ctrl-C (or SIGTERM),
when it stops them and exits 0. Everything is kept in the data directory, so the next run starts warm and adds
no second project and no duplicate tasks. The admin is admin@example.com with a password generated on the first
run and saved in DATA_DIR/admin-login.json, unless LABEL_STUDIO_USERNAME / LABEL_STUDIO_PASSWORD are set.
Backend settings (LLM_MODEL, THREADS, ...) are read from the environment as by `make serve`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backend.cli import reporting_errors
from backend.dev import demo


def _port(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {number}")
    return number


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _env_port(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return _port(raw) if raw else default
    except (ValueError, argparse.ArgumentTypeError):
        sys.exit(f"error: {name}={raw!r} is not a port")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--ls-port",
        type=_port,
        default=_env_port("LABEL_STUDIO_PORT", demo.LS_PORT),
        help="Label Studio's port (default: LABEL_STUDIO_PORT or %(default)s)",
    )
    parser.add_argument(
        "--backend-port",
        type=_port,
        default=_env_port("PORT", demo.BACKEND_PORT),
        help="the backend's port (default: PORT or %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=demo.DATA_DIR,
        help="where Label Studio's database, the logs and the login are kept (default: %(default)s)",
    )
    parser.add_argument(
        "--tasks",
        type=_positive,
        default=demo.N_TASKS,
        help="about how many reviews to import, a fixed stratified sample (default: %(default)s)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    session = demo.Demo(
        args.data_dir, ls_port=args.ls_port, backend_port=args.backend_port, n_tasks=args.tasks, progress=True
    )
    return reporting_errors(lambda: demo.run(session))


if __name__ == "__main__":
    sys.exit(main())
