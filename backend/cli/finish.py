"""Finish a project's dataset: people's labels, the model's labels where it meets an accuracy target, and the tasks
that still need a person.

The model is the one the backend trains (the LLM's hidden state and calibrated probabilities, blended by a logistic
regression fitted on the project's human labels; the LLM alone while there are too few labels to fit). Its promise
(at least --target accuracy on the tasks it labels, with --level confidence) is tested on an audit, so it holds
whatever order people labeled in:

  1. The first run plans: the labels so far choose the region the model may label (the open tasks at or above a
     confidence floor) and how many of them people check; that many are drawn at random. --apply keeps the plan
     as the "Finish audit" tab in Label Studio's Data Manager: people label those tasks like any other.
  2. Once every audit task has a label, the next run tests the model (refitted on the plan's labels, never the
     audit's) on the audit, threshold by threshold in a fixed order (from the support the plan expected to pass
     down), stopping at the first that fails its Clopper-Pearson bound; the model labels the region's open tasks
     at or above the last that passed. --bound ppi bounds each threshold by prediction-powered inference instead
     (the region's confidences corrected by the audit's answers): on Rotten Tomatoes it left people 0.5-8.5
     points less (0.546 of a 3,000-review pool with the 1.5B, against 0.631), the promise kept in every simulated
     run; but it is asymptotic, not exact, so it is not the default (docs/learning.md).

Gold and synthetic tasks are listed but never labeled by the model. Label Studio is reached at LABEL_STUDIO_URL
with LABEL_STUDIO_API_KEY; the model as the backend loads it (LLM_MODEL, DATA_DIR for its caches, ...). Without
--apply nothing in Label Studio changes. A typical round:

  labelloop finish --project 3 --out finished.json            # the plan: the audit's size and the region
  labelloop finish --project 3 --out finished.json --apply    # keep the plan: the "Finish audit" tab
  ... people label the tab's tasks ...
  labelloop finish --project 3 --out finished.json --apply    # test, and write the model's labels
  labelloop finish --project 3 --undo                         # take them all back, and the tab

The file (JSON): "tasks" (every task once: id, source "human" | "model" | "needs_person" | "audit" | "gold" |
"synthetic" | "unreadable", label; the model's probability for model, needs_person and audit rows, and its guess
for the latter two), "estimate" (rule "audit", bound "exact" | "ppi"; threshold, accuracy and lower_bound on the
"support" audit labels at or above it, target, confidence, model_labeled), "audit" (status "none" | "drawn" | "waiting" | "tested", tab,
size, labeled, pending, region_tasks, floor, expected, drawn, plan), "needs_person" (task ids, least sure first),
"counts", "model", "questions"; with --apply also "apply". Every key is declared, with what it means, in
backend/loop/finish_file.py.

Every question of the labeling config is finished on its own: its own model, confidence, audit sample, test and
threshold (a multi-label question by the whole set: the model answers it only when every label's decision is sure
enough, and is right only when the set is exactly the people's). One audit serves them all: each question's sample
is drawn from its own region, the tab holds their union, and people label those tasks on every question. The top
level of the file reads the first question (its label, estimate and model, as for one question); "questions" holds
each question's model, estimate, audit (status, size, labeled, pending, region_tasks, floor, expected), counts and
human_fraction (the share of the dataset's tasks people label on it), and each task's row its "questions" (source,
label; guess and probability, the confidence, where the model answered). A task's source is "model" only when the
model labels every question; one where it labels some is "needs_person" (for the rest) and holds the model's
annotation for the questions it labels.

--apply creates one annotation per task the model labels on some question and nobody has annotated, holding only
those questions' results, marked as the model's (each result item's meta.labelloop is "373657031212861361"),
written in bulk through a prediction set of their own that Label Studio turns into annotations, then deleted;
training never reads them as human labels. Run again, it writes nothing twice and takes back model
labels a person has since annotated beside or that fell below the threshold. --undo removes every model annotation no person has saved since, and the audit's tab; a model
label a person corrected or confirmed is theirs and stays.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.cli import Parser, fraction, load_model, reporting_errors
from backend.files import write_json
from backend.labelstudio.client import connect
from backend.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", type=int, required=True, help="Label Studio project id")
    parser.add_argument(
        "--out",
        type=Path,
        help="the finished dataset (JSON, written atomically); with --undo, what was removed (optional)",
    )
    parser.add_argument(
        "--target", type=fraction, default=0.95, help="accuracy the model's labels must reach (default: %(default)s)"
    )
    parser.add_argument(
        "--level",
        type=fraction,
        default=0.95,
        help="confidence of the one-sided bound on that accuracy (default: %(default)s)",
    )
    parser.add_argument(
        "--bound",
        choices=("exact", "ppi"),
        default="exact",
        help="how the audit's answers bound each threshold's accuracy: exact (Clopper-Pearson) or ppi "
        "(prediction-powered: fewer tasks left to people, asymptotic) (default: %(default)s)",
    )
    parser.add_argument(
        "--new-audit",
        action="store_true",
        help="plan a new audit from every human label now (the old one's labels become ordinary "
        "labels); with --apply it replaces the tab. Drawing again because an audit failed "
        "spends the promise's confidence: draw again for more labels, not for a better verdict",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--apply", action="store_true", help="also write the model's labels into Label Studio")
    what.add_argument(
        "--undo", action="store_true", help="remove the model's labels from Label Studio (no model needed) and stop"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def run_undo(args: argparse.Namespace) -> int:
    from backend.loop import finish

    ls = connect()
    record = finish.undo(ls.client, args.project, progress=not args.quiet)
    if args.out:
        write_json(args.out, {"project": args.project, "undo": record})
    print(
        f"removed {len(record['removed'])} model annotations from project {args.project}"
        + (f"; kept {len(record['kept_edited'])} a person has saved since" if record["kept_edited"] else "")
        + ("; removed the audit tab" if record["audit_tab_removed"] else "")
    )
    return _failures(record)


def _pct(x: float) -> str:
    return f"{100 * x:.4g}%"


def _failures(record: dict) -> int:
    if not record["failed"]:
        return 0
    first = record["failed"][0]["error"]
    print(f"error: {len(record['failed'])} changes failed (first: {first}); run the command again", file=sys.stderr)
    return 1


def _audit_line(a: dict, e: dict, args: argparse.Namespace) -> str:
    target = f"{_pct(e['target'])} accuracy at {_pct(e['confidence'])} confidence"
    if a["status"] == "none":
        return (
            f"no audit: the labels so far show no region where the model could reach {target} at a cost of "
            "fewer labels than it saves; label more tasks, then run again"
        )
    plan = (
        f"an audit of {a['size']} tasks drawn at random from the {a['region_tasks']} open tasks at probability "
        f">= {a['floor']:.4f}"
    )
    if a["status"] == "drawn":
        if args.apply:
            return f"drew {plan}: label the tasks of the tab 'Finish audit' (id {a['tab']}), then run again"
        return f"would draw {plan} (--apply keeps it as the tab 'Finish audit')"
    if a["status"] == "waiting":
        return (
            f"{plan}: {a['labeled']} labeled, {len(a['pending'])} to go in the tab 'Finish audit' (id {a['tab']});"
            " the model labels nothing until all are done"
        )
    if e["threshold"] is None:
        return (
            f"{plan}: every task labeled; the model's most confident answers already fail {target}: every open "
            "task needs a person (--new-audit plans again once more labels are in)"
        )
    return f"{plan}: every task labeled; tested"


def _several_audit_line(a: dict, questions: dict, e: dict, args: argparse.Namespace) -> str:
    """The audit line of a config of several questions: one audit, each question's sample drawn from its region."""
    target = f"{_pct(e['target'])} accuracy at {_pct(e['confidence'])} confidence"
    if a["status"] == "none":
        return (
            f"no audit: for no question do the labels so far show a region where the model could reach {target} at a "
            "cost of fewer labels than it saves; label more tasks, then run again"
        )
    parts = ", ".join(
        f"{name} {q['audit']['size']} of {q['audit']['region_tasks']} at >= {q['audit']['floor']:.4f}"
        for name, q in questions.items()
        if q["audit"]["size"]
    )
    plan = f"an audit of {a['size']} tasks drawn at random (each question's sample from its region: {parts})"
    if a["status"] == "drawn":
        if args.apply:
            return (
                f"drew {plan}: label the tasks of the tab 'Finish audit' (id {a['tab']}) on every question, then run "
                "again"
            )
        return f"would draw {plan} (--apply keeps it as the tab 'Finish audit')"
    if a["status"] == "waiting":
        return (
            f"{plan}: {a['labeled']} labeled, {len(a['pending'])} to go in the tab 'Finish audit' (id {a['tab']}); "
            "a question's model labels nothing until its own sample is done"
        )
    return f"{plan}: every task labeled; tested"


def _question_line(name: str, q: dict) -> str:
    """One question's part: how many tasks the model labels, at what threshold, and the share left to people."""
    e, a, c = q["estimate"], q["audit"], q["counts"]
    head = f"  {name}{' (multi-label: every label sure)' if q['multiple'] else ''}: {c['model']} labeled by the model"
    people = f"people {_pct(q['human_fraction'])}" if q["human_fraction"] is not None else "no task to label"
    if e["threshold"] is not None:
        return (
            f"{head} at confidence >= {e['threshold']:.4f} (accuracy {e['accuracy']:.3f} on {e['support']} audit "
            f"labels, at least {e['lower_bound']:.3f} with {_pct(e['confidence'])} confidence); {people}"
        )
    why = {
        "none": "no audit for it",
        "drawn": f"its audit sample of {a['size']} is to be labeled",
        "waiting": f"its audit waits for {len(a['pending'])} of {a['size']} tasks",
        "tested": "its audit's most confident answers already fail the target",
    }[a["status"]]
    return f"{head} ({why}); {people}"


def run(args: argparse.Namespace) -> int:
    from backend.loop import finish

    settings = Settings.from_env()
    ls = connect()
    finish.project_schema(ls.client, args.project)  # a wrong project fails before the model loads
    loop = finish.make_loop(settings, lambda: load_model(settings))
    dataset = finish.build(
        ls.client,
        args.project,
        loop,
        target=args.target,
        level=args.level,
        progress=not args.quiet,
        new_audit=args.new_audit,
        bound=args.bound,
    )
    code = 0
    if args.apply:
        dataset["apply"] = finish.apply(ls.client, args.project, dataset, progress=not args.quiet)
    write_json(args.out, dataset)
    c, e, a = dataset["counts"], dataset["estimate"], dataset["audit"]
    several = dataset.get("questions") or {}
    print(
        f"project {args.project}: {c['tasks']} tasks: {c['human']} labeled by people, {c['model']} by the model"
        + (" (on every question), " if len(several) > 1 else ", ")
        + f"{c['audit']} in the audit, {c['needs_person']} need a person (gold {c['gold']}, synthetic "
        f"{c['synthetic']}, no text {c['unreadable']})"
    )
    print(_several_audit_line(a, several, e, args) if len(several) > 1 else _audit_line(a, e, args))
    if len(several) > 1:
        for name, q in several.items():
            print(_question_line(name, q))
    elif e["threshold"] is not None:
        print(
            f"model labels: probability >= {e['threshold']:.4f}; accuracy {e['accuracy']:.3f} on {e['support']} "
            f"audit labels, at least {e['lower_bound']:.3f} with {_pct(e['confidence'])} confidence "
            f"{'(prediction-powered) ' if e.get('bound') == 'ppi' else ''}(target {_pct(e['target'])})"
        )
    if args.apply:
        a = dataset["apply"]
        print(
            f"Label Studio: {len(a['created'])} model annotations created, {len(a['kept'])} already there, "
            f"{len(a['removed'])} taken back, {len(a['skipped'])} tasks skipped (annotated)"
        )
        code = _failures(a)
    print(f"wrote {args.out}")
    return code


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.undo and args.out is None:
        print("error: --out FILE is required (where the finished dataset goes) (see --help)", file=sys.stderr)
        return 2
    return reporting_errors(lambda: run_undo(args) if args.undo else run(args))


if __name__ == "__main__":
    sys.exit(main())
