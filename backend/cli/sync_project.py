"""Set up a Label Studio project for the labelloop backend: project, tasks, ML backend connection, export.

Label Studio is reached at LABEL_STUDIO_URL with LABEL_STUDIO_API_KEY (a Personal Access Token from
Account & Settings, or a legacy token where the organization allows them). Every subcommand can be run again
safely. A typical first run:

  labelloop sync-project project --title "Movie reviews"          # prints the project id, e.g. 3
  labelloop sync-project import --project 3 reviews.csv
  labelloop sync-project connect --project 3 --backend-url http://localhost:9090
  labelloop sync-project export --project 3 --out labels.json
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from backend.cli import reporting_errors
from backend.labelstudio import sync, task_files
from backend.labelstudio.client import connect
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES
from backend.ranking import strategies


def cmd_project(args: argparse.Namespace) -> int:
    ls = connect()
    result = sync.ensure_project(ls.client, args.title, args.config, args.guidelines)
    print(f"project {result.id} {result.status}: {args.title!r}", file=sys.stderr)
    print(result.id)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    ls = connect()
    project = sync.get_project(ls.client, args.project)
    text_key = args.text_key or task_files.default_text_key(project.label_config or "")
    tasks = task_files.read_tasks(args.file, text_key=text_key)
    result = sync.import_tasks(ls.client, args.project, tasks, chunk_size=args.chunk_size, progress=not args.quiet)
    print(f"imported {result.imported} tasks, skipped {result.skipped} already in project {args.project}")
    return 0


def backend_auth() -> tuple[str, str] | None:
    """The backend's basic-auth credentials, from the same variables the backend reads."""
    user, password = os.environ.get("BASIC_AUTH_USER", "").strip(), os.environ.get("BASIC_AUTH_PASS", "")
    return (user, password) if user and password else None


def cmd_connect(args: argparse.Namespace) -> int:
    ls = connect()
    result = sync.connect_backend(
        ls.client,
        args.project,
        args.backend_url,
        batch_size=args.batch_size,
        progress=not args.quiet,
        wait=args.wait,
        strategy=args.strategy,
        lanes=args.lanes,
        auth=backend_auth(),
        page_url=args.page_url,
    )
    verb = "connected" if result.created else "updated"
    print(f"ML backend {result.ml_backend_id} {verb}; backend model_version {result.model_version}")
    print(f"{result.predicted} of {result.tasks} tasks have predictions from {result.model_version}")
    print(f"project page: {result.page} (named in the project's description)")
    print(
        f"queue tabs: {', '.join(result.tabs)} (annotators: open your tab, then Label Tasks As Displayed)"
        if len(result.tabs) > 1
        else "queue: Label All Tasks serves the strategy's order; the Model queue tab shows it"
    )
    if result.project_model_version != result.model_version:
        # Not an error: an empty project is a normal first step. The order of work needs the version, though.
        print(
            f"warning: the project's model_version is still {result.project_model_version!r}: Label Studio accepts "
            "a version only once a task has a prediction from it; import tasks, then run connect again",
            file=sys.stderr,
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    ls = connect()
    result = sync.export_json(ls.client, args.project, args.out)
    print(f"exported {result.tasks} tasks with {result.annotations} annotations to {args.out}")
    return 0


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "project",
        help="create or update a project by title; prints its id",
        description="Create the project, or update the one with this exact title, with the labeling config and "
        "the guidelines (rendered to HTML as the project's instructions, shown before labeling). "
        "Prints the project id on stdout.",
    )
    p.add_argument("--title", required=True, help="project title; an existing project with this title is updated")
    p.add_argument(
        "--config",
        type=Path,
        default=DEMO_CONFIG,
        help="labeling config XML (default: %(default)s)",
    )
    p.add_argument(
        "--guidelines",
        type=Path,
        default=DEMO_GUIDELINES,
        help="guidelines Markdown with front matter (default: %(default)s)",
    )
    p.set_defaults(func=cmd_project)

    p = sub.add_parser(
        "import",
        help="import tasks from JSON, JSONL or CSV, skipping those already imported",
        description='Import tasks into a project. FILE is .json (a list of tasks {"data": {...}} or of data '
        "objects), .jsonl (one per line) or .csv/.tsv (one task per row, columns become data fields). Each task's "
        f"data gets a '{task_files.HASH_KEY}' field, a hash of its content; tasks whose hash the project already "
        "has are skipped, so running the import again adds nothing twice.",
    )
    p.add_argument("--project", type=int, required=True, help="project id")
    p.add_argument("file", type=Path, metavar="FILE", help="tasks file (.json, .jsonl or .csv)")
    p.add_argument(
        "--text-key",
        help="the data field (CSV column) holding the text; "
        "default: the field the project's <Text> tag reads, else 'text'",
    )
    p.add_argument("--chunk-size", type=_positive, default=500, help="tasks per import request (default: %(default)s)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "connect",
        help="connect the ML backend, set the model version and uncertainty sampling, predict all tasks",
        description="Check that the backend can serve the project's labeling config (its /setup), add it to the "
        "project (or update the existing connection to the same URL), make the backend's model version the "
        "project's, switch the task order to uncertainty sampling, and have Label Studio fetch predictions for "
        "every task. Label Studio must be able to reach --backend-url itself. A backend behind basic auth: set "
        "BASIC_AUTH_USER and BASIC_AUTH_PASS (as for the backend); Label Studio then sends them with every call.",
    )
    p.add_argument("--project", type=int, required=True, help="project id")
    p.add_argument(
        "--backend-url",
        required=True,
        help="the ML backend's URL as Label Studio reaches it, e.g. http://localhost:9090",
    )
    p.add_argument(
        "--batch-size", type=_positive, default=100, help="tasks per prediction request (default: %(default)s)"
    )
    p.add_argument(
        "--wait",
        type=float,
        default=120.0,
        help="seconds to wait for the backend's model to load (default: %(default)s)",
    )
    p.add_argument(
        "--strategy",
        choices=sorted(strategies.REGISTRY),
        help="the order annotators get tasks in for this project (default: the backend's RANK_STRATEGY)",
    )
    p.add_argument(
        "--lanes",
        type=_positive,
        help="annotators labeling at once in a project whose Label Studio records project members (Enterprise "
        "teams): one 'Model queue i/N' tab each, so every annotator keeps the strategy's order without sharing a "
        "task (default: 1, the open-source edition's 'Label All Tasks' already does)",
    )
    p.add_argument(
        "--page-url",
        help="the backend's address as people's browsers reach it, when not --backend-url (a proxy, a public "
        "name): the project's description names <page-url>/projects/<id>, the project's page (default: "
        "--backend-url)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_connect)

    p = sub.add_parser(
        "export",
        help="export all tasks with annotations and predictions as JSON",
        description="Export the project in Label Studio's JSON format (every task, labeled or not, with its "
        "annotations and predictions) to a file, written atomically.",
    )
    p.add_argument("--project", type=int, required=True, help="project id")
    p.add_argument("--out", type=Path, required=True, help="output JSON file")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return reporting_errors(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
