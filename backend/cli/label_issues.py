"""List the human labels most likely wrong, from a Label Studio JSON export or a live project.

Each labeled task's label (the majority of its annotators; a tie goes to the label listed first in the config) is
judged by the model the backend trains (the LLM's hidden state and calibrated probabilities), fitted on the other
labels (5-fold out-of-fold) and averaged with the LLM's own probabilities; cleanlab's confident learning says which
labels are issues, and the probability of the given label is its quality (lower: more likely wrong). Gold tasks
are judged against their known answer; synthetic tasks and the labels the model wrote (finish --apply) are left
out. Each issue names the task, its text, the given and the suggested label, the quality and the annotators.

  labelloop label-issues export.json --config label_config/sentiment.xml             # a table
  labelloop label-issues export.json --config label_config/sentiment.xml --format json
  labelloop label-issues --project 3 --review                                        # and a tab in Label Studio

With --project the export is read through the API (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY) and the project's own
labeling config is used. --review makes or refreshes the project's "Label issues" tab, holding exactly the
flagged tasks (flagged on any question): a reviewer opens each one and changes the label, or saves it unchanged to confirm it; a confirmed
label is not flagged again while it stays the same. The model is loaded as the backend loads it (LLM_MODEL,
DATA_DIR for its caches).

Every question of the labeling config is judged on its own (--question NAME judges one): its given labels, its own
model and cleanlab's verdict. A multi-label question's given label is the set most annotators chose; its model gives
each label's probability of applying and cleanlab's multi-label issue finder flags the tasks where any label looks
wrong (given and suggested are then lists of labels, the quality cleanlab's multi-label score; no CROWDLAB). The
gold file (--gold, default the packaged sentiment gold) answers the first question judged; the other questions
leave gold tasks out.

--format json prints one JSON object: "issues" (one object per flagged label, worst first: task, question, text,
given, suggested, quality, annotators, reason "model" or "gold", probabilities), "annotators" (labels, flagged,
rate over every question's labels; crowdlab_quality), "consensus" (where tasks have several annotators: CROWDLAB's
consensus label and its quality per task, each annotator's quality, for the first question; else null) with
"agreement" (Cohen's and Fleiss' kappa, Krippendorff's alpha), "counts" (summed over questions), "model" (the first
question's), "method", and "questions" (each question's multiple, labels, counts, annotators, model, consensus).
--format csv writes the issues, one row each (with a question column when several are judged).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
from pathlib import Path

from backend.cli import Parser, load_model, reporting_errors
from backend.errors import LabelloopError
from backend.labelstudio import schema as schemas
from backend.labelstudio.client import connect
from backend.labelstudio.export import ExportError, load_export
from backend.quality import agreement, gold, label_issues
from backend.settings import Settings

FORMATS = ("table", "json", "csv")
CSV_COLUMNS = ("task", "given", "suggested", "quality", "annotators", "reason", "text")


class UsageError(LabelloopError):
    http_status = 400


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", nargs="?", type=Path, help="a Label Studio JSON export (full, with annotations)")
    parser.add_argument("--config", type=Path, help="the project's labeling config (XML), with EXPORT")
    parser.add_argument("--project", type=int, help="read Label Studio project ID through the API instead")
    parser.add_argument(
        "--review", action="store_true", help="with --project: make or refresh the project's 'Label issues' tab"
    )
    parser.add_argument(
        "--gold",
        type=Path,
        help="gold answers (JSONL/JSON/CSV with text and label; default: the packaged sentiment gold set)",
    )
    parser.add_argument(
        "--question", metavar="NAME", help="judge this question (a <Choices> name) alone (default: every question)"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output (default %(default)s)")
    parser.add_argument("--out", type=Path, help="write the output here instead of standard output")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    return parser


def check(args: argparse.Namespace) -> None:
    if args.project is not None and args.export is not None:
        raise UsageError("give either an EXPORT file or --project, not both")
    if args.project is None and args.export is None:
        raise UsageError("give an EXPORT file (with --config) or --project ID")
    if args.export is not None and args.config is None:
        raise UsageError("--config CONFIG is required with an EXPORT (the project's labeling config)")
    if args.review and args.project is None:
        raise UsageError("--review needs --project (the tab is made in a live project)")


def read_config(path: Path) -> schemas.Config:
    """The config: every question the backend fills."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise UsageError(f"cannot read --config {path}: {e.strerror or e}") from None
    try:
        return schemas.parse_config(text)
    except schemas.SchemaError as e:
        raise UsageError(f"--config {path}: {e}") from None


def judged(config: schemas.Config, name: str | None) -> list[schemas.Schema]:
    """The questions to judge: every one, or --question's."""
    try:
        return [config.question(name)] if name else list(config.questions)
    except schemas.SchemaError as e:
        raise UsageError(f"--question: {e}") from None


def shown(label: str | list[str]) -> str:
    """A given or suggested label as a table or CSV cell: a multi-label set as its labels, "(none)" when empty."""
    return label if isinstance(label, str) else ", ".join(label) or gold.NO_LABEL


def render(report: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    several = len(report.get("questions") or {}) > 1
    if fmt == "csv":
        out = io.StringIO()
        columns = ("question", *CSV_COLUMNS) if several else CSV_COLUMNS
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for issue in report["issues"]:
            writer.writerow(
                {
                    **issue,
                    "given": shown(issue["given"]),
                    "suggested": shown(issue["suggested"]),
                    "annotators": ";".join(issue["annotators"]),
                }
            )
        return out.getvalue()
    c = report["counts"]
    among = f"{c['tasks']} labels of {len(report['questions'])} questions" if several else f"{c['tasks']} labeled tasks"
    lines = [
        f"{c['flagged']} likely wrong labels among {among} ({c['flagged_gold']} gold; "
        f"{c['confirmed_not_flagged']} confirmed by a reviewer and not flagged again)",
    ]
    if several:
        for name, q in report["questions"].items():
            kind = ", multi-label" if q["multiple"] else ""
            lines.append(f"  {name}{kind}: {q['counts']['flagged']} of {q['counts']['tasks']} labeled tasks")
    lines.append("")
    if report["issues"]:
        question = f"{'question':12} " if several else ""
        lines.append(f"  {'quality':>7}  {'task':>8}  {question}{'given':12} {'suggested':12} {'annotators':20} text")
        for i in report["issues"]:
            text = " ".join(i["text"].split())
            question = f"{i['question'][:12]:12} " if several else ""
            lines.append(
                f"  {i['quality']:7.3f}  {str(i['task']):>8}  {question}{shown(i['given']):12} "
                f"{shown(i['suggested']):12} {', '.join(i['annotators'])[:20]:20} {text[:60]}"
            )
        lines.append("")
    lines.append("flagged labels per annotator:")
    for a in report["annotators"]:
        lines.append(f"  {a['annotator']:30} {a['flagged']:5} of {a['labels']:5} ({100 * a['rate']:.1f}%)")
    crowd = report.get("consensus")
    if crowd and "error" not in crowd:
        qualities = ", ".join(
            f"{a} {q:.3f}" for a, q in sorted(crowd["annotator_quality"].items(), key=lambda x: -x[1])
        )
        lines.append(
            f"CROWDLAB (tasks with several annotators): annotator quality {qualities}; the consensus differs "
            f"from the majority on {crowd['changed']} of {len(crowd['tasks'])} tasks"
        )
        ag = report.get("agreement") or {}
        if ag.get("krippendorff_alpha") is not None:
            lines.append(
                f"agreement: Krippendorff's alpha {ag['krippendorff_alpha']:.3f}"
                + (f", Fleiss' kappa {ag['fleiss_kappa']:.3f}" if ag.get("fleiss_kappa") is not None else "")
            )
    elif crowd:
        lines.append(f"CROWDLAB could not run: {crowd['error']}")
    models = {name: q["model"] for name, q in report["questions"].items()} if several else {"": report["model"]}
    for name, m in models.items():
        lines.append(
            f"model{f' ({name})' if name else ''}: {m['kind']} trained on {m['trained_on']} labels"
            + (f" ({m['fallback']})" if m["fallback"] else "")
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from backend.labelstudio import review as label_review
    from backend.loop import finish

    settings = Settings.from_env()
    with tempfile.TemporaryDirectory() as tmp:
        client = None
        if args.project is not None:
            client = connect().client
            config = finish.project_schema(client, args.project)[1]  # a wrong project fails before the model loads
            questions = judged(config, args.question)
            path = Path(tmp) / "export.json"
            tasks = label_review.download_export(client, args.project, path)
        else:
            config = read_config(args.config)
            questions = judged(config, args.question)
            path, tasks = args.export, None
        lead = questions[0]  # the question the gold file answers
        try:
            datasets = {
                q.from_name: load_export(
                    path, from_name=q.from_name, labels=q.labels, text_key=q.data_key, multiple=q.multiple
                )
                for q in questions
            }
            gold_set = (
                gold.load_gold(args.gold, lead.labels, multiple=lead.multiple) if args.gold else gold.default_gold()
            )
        except (ExportError, gold.GoldError) as e:
            raise UsageError(str(e)) from None
        # The packaged gold answers a sentiment question: it judges the first question only where its labels fit.
        answers = bool(args.gold) or (not lead.multiple and set(gold_set.labels) <= set(lead.labels))
        rows = {
            q.from_name: label_issues.tasks_of(datasets[q.from_name], gold_set, answers and q is lead)
            for q in questions
        }
        first = config.primary.from_name
        confirmed: dict[str, dict[int, str]] = {}
        seen: dict[int, str] = {}
        state: dict = {}
        if args.review:
            seen = label_review.fingerprints(tasks or [])
            state = label_review.read_state(client, args.project)
            for q in questions:
                given = {r.task: r.given for r in rows[q.from_name] if r.answer is None}
                before = label_review.question_state(state, q.from_name, first)
                confirmed[q.from_name] = label_review.confirmed_labels(before, seen, given)
        loop = finish.make_loop(settings, lambda: load_model(settings))

        def scorer(name: str) -> label_issues.Scorer:
            def score(texts: list[str]) -> tuple:
                scores = finish.score_questions(loop, config, texts, not args.quiet)
                return scores.vectors, scores.read[name], scores.info  # the judge trains its models on them

            return score

        reports = {
            q.from_name: label_issues.judge(
                rows[q.from_name],
                q.labels,
                scorer(q.from_name),
                loop.text.learner,
                confirmed.get(q.from_name),
                multiple=q.multiple,
            )
            for q in questions
        }
        report = label_issues.combine(
            reports, {q.from_name: q.multiple for q in questions}, {q.from_name: q.labels for q in questions}
        )
        if report["consensus"]:
            stats = agreement.analyse(datasets[lead.from_name], bootstrap=0)  # κ/α beside CROWDLAB, as agreement has
            report["agreement"] = {
                key: stats[key] for key in ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "percent_agreement")
            }
        if args.review:
            flagged = {
                q.from_name: [
                    (int(i["task"]), q.key(i["given"]) if q.multiple else i["given"])
                    for i in reports[q.from_name]["issues"]
                ]
                for q in questions
            }
            kept = dict(confirmed)
            for name in config.names:  # a question not judged now keeps its confirmations
                if name not in kept:
                    before = label_review.question_state(state, name, first)["confirmed"]
                    kept[name] = {int(t): label for t, label in before.items()}
            view = label_review.write_tab(client, args.project, flagged, seen, kept, first)
            report["review"] = {
                "tab": view,
                "title": label_review.TITLE,
                "tasks": len({t for pairs in flagged.values() for t, _ in pairs}),
                "confirmed": sum(len(c) for c in confirmed.values()),
            }
    output = render(report, args.format)
    if args.out:
        args.out.write_text(output, encoding="utf-8")
        print(f"wrote {args.out}: {report['counts']['flagged']} issues", file=sys.stderr)
    else:
        sys.stdout.write(output)
    if args.review:
        print(
            f"tab {label_review.TITLE!r} of project {args.project} holds {report['review']['tasks']} tasks",
            file=sys.stderr,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # UsageError is raised by the run too: a config or export that cannot be read
    return reporting_errors(lambda: check(args) or run(args), usage=(UsageError,))


if __name__ == "__main__":
    sys.exit(main())
