"""The labeling loop's commands in one program: `labelloop COMMAND --help` tells each one's options."""

from __future__ import annotations

import ast
import importlib
import os
import re
import sys
from pathlib import Path

from backend.cli import Parser

HERE = Path(__file__).resolve().parent
SERVE = ["-m", "gunicorn", "-c", "python:backend.serving.gunicorn_conf", "backend.serving.wsgi:app"]
SERVE_SUMMARY = "Run the backend as `make serve` does (gunicorn; its options follow, e.g. --bind 0.0.0.0:9090)"


def commands() -> dict[str, str]:
    """Subcommand name -> its module's file stem: every module of backend/cli is one command."""
    stems = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "main")
    return {stem.replace("_", "-"): stem for stem in stems}


def summary(stem: str) -> str:
    """The first sentence of the command's docstring, asides in parentheses left out; read from the source, since
    importing every command for --help would load their libraries."""
    doc = ast.get_docstring(ast.parse((HERE / f"{stem}.py").read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    first = re.sub(r"\s*\([^()]*\)", "", first)
    return re.split(r"\.(?:\s|$)", first)[0]


def parser() -> Parser:
    top = Parser(prog="labelloop", description=__doc__)
    sub = top.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for name, stem in commands().items():
        sub.add_parser(name, help=summary(stem).replace("%", "%%"), add_help=False)  # argparse formats help
    sub.add_parser("serve", help=SERVE_SUMMARY, add_help=False)
    return top


def serve(argv: list[str]) -> int:
    """gunicorn in place of this process, as `make serve` runs it, with the options given after `serve`."""
    if argv and argv[0] in ("-h", "--help"):
        print(
            f"usage: labelloop serve [GUNICORN OPTION ...]\n\n{SERVE_SUMMARY}.\nGunicorn's own options: "
            "python -m gunicorn --help"
        )
        return 0
    os.execv(sys.executable, [sys.executable, *SERVE, *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    known = commands()
    # Only the command's name is parsed here: everything after it, --help included, is the command's own.
    split = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    parser().parse_args(argv[: split + 1])  # --help, no command, or an unknown one: help, or one line and exit 2
    name, rest = argv[split], argv[split + 1 :]
    if name == "serve":
        return serve(rest)
    command = importlib.import_module(f"backend.cli.{known[name]}")
    # argparse names a program after argv[0]: the command's usage and errors then read `labelloop finish`.
    called, sys.argv[0] = sys.argv[0], f"labelloop {name}"
    try:
        return command.main(rest)
    finally:
        sys.argv[0] = called
