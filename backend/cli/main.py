"""The labeling loop's commands in one program: `labelloop COMMAND --help` tells each one's options."""

from __future__ import annotations

import argparse
import ast
import importlib
import os
import re
import sys
import textwrap
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


def is_benchmark(name: str) -> bool:
    """Measurements and simulations, listed apart from the commands a team runs on its projects."""
    return name.startswith(("bench", "compare-", "simulate-", "load-test"))


def listing(width: int = 100) -> str:
    """Every command with its summary: the product's first, then the benchmarks and simulations."""
    rows = {name: summary(stem) for name, stem in commands().items()} | {"serve": SERVE_SUMMARY}
    out = []
    for title, names in (
        ("commands:", [n for n in rows if not is_benchmark(n)]),
        ("benchmarks and simulations:", [n for n in rows if is_benchmark(n)]),
    ):
        out.append(title)
        for name in names:
            lines = textwrap.wrap(rows[name], width - 24) or [""]
            out.append(f"    {name:<18}  {lines[0]}" if len(name) <= 18 else f"    {name}\n{' ' * 24}{lines[0]}")
            out += [" " * 24 + line for line in lines[1:]]
        out.append("")
    return "\n".join(out)


def parser() -> Parser:
    top = Parser(
        prog="labelloop", description=__doc__, epilog=listing(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # Commands are added without a help line: argparse would list them all in one group; the epilog lists them in two.
    sub = top.add_subparsers(dest="command", metavar="COMMAND", help="one of the commands below")
    sub.required = True
    for name in [*commands(), "serve"]:
        sub.add_parser(name, add_help=False)
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
