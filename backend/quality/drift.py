"""Annotator drift: how each annotator does on the hidden gold tasks, over time, from a Label Studio JSON export.

For every annotator (completed_by) their answers on gold tasks are put in time order (created_at) and reported as:
overall accuracy; accuracy in a sliding window of the last `window` gold answers (default 10); Cohen's κ against the
gold labels (agreement.cohen_kappa, null with a note when undefined); and the confusion of their errors
(gold label → their label → count).

An annotator is flagged when any of these holds (comparisons on values rounded to 9 decimals):
- below threshold: overall accuracy < threshold (default 0.8);
- latest window below threshold: accuracy of their last `window` gold answers < threshold;
- falling: the latest window's accuracy is at least `drop` (default 0.15) below the first window's. Only judged
  once there are 2 × window gold answers, so the two windows share no answer; with window 10 that is 2 or more
  extra errors in the last 10 compared with the first 10. A window difference was chosen over the slope of a
  logistic fit because it is easy to explain to an annotator, and with the 20-40 gold answers of a typical batch a
  slope rarely reaches significance even when the drop is plain to see.

Cancelled annotations, synthetic tasks (data.synthetic or meta.synthetic) and non-gold tasks are ignored; an
annotator's latest annotation of a task wins. Annotators without any gold answer are listed with a note and are
never flagged. The full JSON export is needed: JSON-MIN and CSV lose what this needs per annotation.
labelloop gold drift is the command-line front end.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from backend.labelstudio.export import first_choices_name, region_choices
from backend.labelstudio.records import AnnotatorId, annotator_id, annotator_sort_key, is_synthetic, parse_time, truthy
from backend.labelstudio.tasks import GoldVote
from backend.quality import agreement
from backend.quality.gold import GoldError, GoldSet, set_label

DEFAULT_WINDOW = 10
DEFAULT_THRESHOLD = 0.8
DEFAULT_DROP = 0.15


@dataclass
class Annotation:
    """One annotation of a JSON export, with the timing fields export.Item leaves out."""

    task_id: Any
    text: str | None
    annotator: AnnotatorId | None
    choices: list[str] | None  # None: no region for the Choices tag
    created_at: datetime | None
    updated_at: datetime | None
    lead_time: float | None
    cancelled: bool
    synthetic: bool
    order: int  # position in the export, the tie-breaker when timestamps are missing


@dataclass
class GoldAnswer:
    task_id: Any
    created_at: datetime | None
    gold: str
    label: str

    @property
    def correct(self) -> bool:
        return self.label == self.gold


def _task_text(data: dict, text_key: str | None) -> str | None:
    if text_key is not None:
        value = data.get(text_key)
    else:
        # "text" is what the labeling config reads; other layouts fall back to the first text field.
        value = (
            data.get("text")
            if isinstance(data.get("text"), str)
            else next((v for v in data.values() if isinstance(v, str)), None)
        )
    return value if isinstance(value, str) else None


def read_annotations(
    path: str | Path, from_name: str | None = None, text_key: str | None = None
) -> tuple[list[Annotation], dict[str, int]]:
    """Every annotation of a Label Studio JSON export, and counts of its tasks and synthetic tasks.

    from_name picks the Choices tag (default: the first choices region in the export); text_key the data field that
    holds the text (default: "text", else the first text field). Raises GoldError for anything the user must fix.
    """
    path = Path(path)
    try:
        payload = json.loads(path.read_bytes().decode("utf-8-sig"))
    except OSError as exc:
        raise GoldError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GoldError(f"{path} is not UTF-8 text, so not a Label Studio export") from None
    except json.JSONDecodeError as exc:
        raise GoldError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(payload, list) or not all(isinstance(t, dict) for t in payload):
        raise GoldError(f"{path}: expected a Label Studio JSON export (a list of tasks)")
    if payload and not any("annotations" in t or "data" in t for t in payload):
        raise GoldError(
            f"{path} looks like a JSON-MIN export; drift needs the full JSON export (per-annotation "
            "annotators and timestamps)"
        )
    if from_name is None:
        from_name = first_choices_name(payload)  # same tag choice as the agreement report

    annotations: list[Annotation] = []
    counts = {"tasks_in_export": len(payload), "synthetic_tasks_excluded": 0}
    for task in payload:
        data = task.get("data") if isinstance(task.get("data"), dict) else {}
        synthetic = is_synthetic(task)
        counts["synthetic_tasks_excluded"] += synthetic
        for annotation in task.get("annotations") or []:
            if not isinstance(annotation, dict):
                continue
            lead_time = annotation.get("lead_time")
            annotations.append(
                Annotation(
                    task_id=task.get("id"),
                    text=_task_text(data, text_key),
                    annotator=annotator_id(annotation.get("completed_by")),
                    choices=region_choices(annotation.get("result"), from_name),
                    created_at=parse_time(annotation.get("created_at")),
                    updated_at=parse_time(annotation.get("updated_at")),
                    lead_time=float(lead_time) if isinstance(lead_time, (int, float)) else None,
                    cancelled=truthy(annotation.get("was_cancelled")),
                    synthetic=synthetic,
                    order=len(annotations),
                )
            )
    return annotations, counts


# ---------------------------------------------------------------------------------------------------------------
# Statistics


def window_accuracies(correct: Sequence[bool], window: int = DEFAULT_WINDOW) -> list[float]:
    """Accuracy of every run of `window` consecutive answers (full windows only; empty if fewer answers)."""
    return [sum(correct[end - window : end]) / window for end in range(window, len(correct) + 1)]


def _kappa(answers: Sequence[GoldAnswer]) -> tuple[float | None, str | None]:
    labels = sorted({a.gold for a in answers} | {a.label for a in answers})
    index = {label: i for i, label in enumerate(labels)}
    kappa = agreement.cohen_kappa([index[a.label] for a in answers], [index[a.gold] for a in answers])
    if kappa is not None:
        return kappa, None
    if len(answers) < 2:
        return None, "Cohen's κ is null: fewer than 2 gold answers"
    return None, "Cohen's κ is null: the answers and the gold use one and the same label throughout"


def assess(
    answers: Sequence[GoldAnswer],
    window: int = DEFAULT_WINDOW,
    threshold: float = DEFAULT_THRESHOLD,
    drop: float = DEFAULT_DROP,
) -> dict[str, Any]:
    """One annotator's summary from their gold answers in time order (see the module docstring for the flags)."""
    correct = [a.correct for a in answers]
    windows = window_accuracies(correct, window)
    accuracy = sum(correct) / len(correct) if correct else None
    first = windows[0] if windows else None
    latest = windows[-1] if windows else None
    kappa, kappa_note = _kappa(answers) if answers else (None, None)

    errors: dict[str, dict[str, int]] = {}
    for (gold_label, given), count in sorted(Counter((a.gold, a.label) for a in answers if not a.correct).items()):
        errors.setdefault(gold_label, {})[given] = count

    reasons, notes = [], []
    if not answers:
        notes.append("no gold answers: nothing to judge")
    elif accuracy is not None:
        if round(accuracy, 9) < threshold:
            reasons.append(f"overall accuracy {accuracy:.3f} < {threshold:.3f}")
        if latest is not None and round(latest, 9) < threshold:
            reasons.append(f"latest window {latest:.3f} < {threshold:.3f}")
        if first is not None and latest is not None and len(answers) >= 2 * window:
            if round(first - latest, 9) >= drop:
                reasons.append(
                    f"falling: latest window {latest:.3f} is {first - latest:.3f} below the first "
                    f"window {first:.3f} (limit {drop:.3f})"
                )
        else:
            notes.append(f"{len(answers)} gold answer(s): falling is judged from {2 * window}")
        if not windows:
            notes.append(f"fewer than {window} gold answers: no window yet, accuracy rests on {len(answers)}")
        if kappa_note:
            notes.append(kappa_note)
    return {
        "n_gold": len(answers),
        "n_correct": sum(correct),
        "accuracy": accuracy,
        "kappa": kappa,
        "kappa_band": agreement.landis_koch(kappa),
        "first_window": first,
        "latest_window": latest,
        "windows": windows,
        "errors": errors,
        "flagged": bool(reasons),
        "reasons": reasons,
        "notes": notes,
    }


def drift_report(
    export: str | Path,
    gold: GoldSet,
    window: int = DEFAULT_WINDOW,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    drop: float = DEFAULT_DROP,
    from_name: str | None = None,
    text_key: str | None = None,
    multiple: bool = False,
) -> dict[str, Any]:
    """The drift report of an export against a gold set, as one JSON-ready dict (the CLI's --format json).

    With `multiple` the tag is multi-label: an answer is the set of labels chosen (none is an answer too), correct
    when it is the gold set exactly (gold.set_label)."""
    if window < 1:
        raise GoldError(f"window must be 1 or more, got {window}")
    if not 0 <= threshold <= 1:
        raise GoldError(f"threshold must be between 0 and 1, got {threshold}")
    annotations, task_counts = read_annotations(export, from_name, text_key)
    counts = Counter(task_counts)

    latest: dict[tuple, Annotation] = {}
    annotators: set = set()
    for annotation in annotations:
        if annotation.synthetic:
            continue
        if annotation.cancelled:
            counts["cancelled_annotations"] += 1
            continue
        if annotation.annotator is None:
            counts["annotations_without_annotator"] += 1
            continue
        annotators.add(annotation.annotator)
        if not gold.is_gold(annotation.text):
            continue
        key = (annotation.task_id, annotation.annotator)
        previous = latest.get(key)
        if previous is not None:
            counts["duplicate_annotations"] += 1
            if _when(previous) > _when(annotation):
                continue
        latest[key] = annotation
    counts["gold_tasks"] = len({task_id for task_id, _ in latest})

    answers: dict[Any, list[GoldAnswer]] = {a: [] for a in annotators}
    undated = 0
    for annotation in latest.values():
        if multiple:
            given = set_label(annotation.choices or [])
        elif not annotation.choices or len(annotation.choices) != 1:
            counts["gold_annotations_without_one_choice"] += 1
            continue
        else:
            given = annotation.choices[0]
        undated += annotation.created_at is None
        answers[annotation.annotator].append(
            GoldAnswer(annotation.task_id, annotation.created_at, gold.label_for(annotation.text) or "", given)
        )
    for annotator, theirs in answers.items():
        theirs.sort(key=lambda g: _sort_time(g.created_at, latest[(g.task_id, annotator)].order))
    counts["gold_answers_used"] = sum(len(v) for v in answers.values())

    rows = []
    for annotator in sorted(annotators, key=annotator_sort_key):
        summary = assess(answers[annotator], window, threshold, drop)
        summary["answers"] = [
            {
                "task_id": g.task_id,
                "created_at": g.created_at.isoformat() if g.created_at else None,
                "gold": g.gold,
                "label": g.label,
                "correct": g.correct,
            }
            for g in answers[annotator]
        ]
        rows.append({"annotator": str(annotator), **summary})

    notes = []
    if counts["synthetic_tasks_excluded"]:
        notes.append(f"{counts['synthetic_tasks_excluded']} synthetic task(s) excluded")
    if counts["cancelled_annotations"]:
        notes.append(f"{counts['cancelled_annotations']} cancelled (skipped) annotation(s) ignored")
    if counts["duplicate_annotations"]:
        notes.append(
            f"{counts['duplicate_annotations']} older annotation(s) of a gold task replaced by the same "
            "annotator's latest one"
        )
    if counts["gold_annotations_without_one_choice"]:
        notes.append(
            f"{counts['gold_annotations_without_one_choice']} gold annotation(s) without exactly one choice ignored"
        )
    if counts["annotations_without_annotator"]:
        notes.append(f"{counts['annotations_without_annotator']} annotation(s) without an annotator ignored")
    if undated:
        notes.append(f"{undated} gold answer(s) without created_at: ordered by their place in the export")
    if not counts["gold_tasks"]:
        notes.append(
            "no gold task found in the export: were the gold tasks injected (labelloop gold inject) and "
            "is this the same gold file?"
        )
    return {
        "export": str(export),
        "gold": {"source": gold.source, "items": len(gold)},
        "window": window,
        "threshold": threshold,
        "drop": drop,
        "rule": (
            f"flagged when overall accuracy or the latest window of {window} gold answers is below "
            f"{threshold:g}, or when the latest window is at least {drop:g} below the first one "
            f"(judged from {2 * window} gold answers)"
        ),
        "annotators": rows,
        "flagged": [row["annotator"] for row in rows if row["flagged"]],
        "counts": {
            key: int(counts.get(key, 0))
            for key in (
                "tasks_in_export",
                "synthetic_tasks_excluded",
                "gold_tasks",
                "gold_answers_used",
                "cancelled_annotations",
                "duplicate_annotations",
                "gold_annotations_without_one_choice",
                "annotations_without_annotator",
            )
        },
        "notes": notes,
    }


def annotators_on_gold(
    votes: Sequence[GoldVote],
    window: int = DEFAULT_WINDOW,
    threshold: float = DEFAULT_THRESHOLD,
    drop: float = DEFAULT_DROP,
) -> list[dict[str, Any]]:
    """Each annotator's gold accuracy and drift flags from their answers on a live project's gold tasks (what a
    training run reads, backend/labelstudio/tasks.py GoldVote), in the order of their latest answer: the export's
    report in brief, for a training run's record."""
    by_annotator: dict[str, list[GoldVote]] = {}
    for vote in sorted(votes, key=lambda v: (v.at, v.task_id)):
        by_annotator.setdefault(vote.annotator, []).append(vote)
    out = []
    for annotator, answers in sorted(by_annotator.items()):
        summary = assess([GoldAnswer(v.task_id, None, v.gold, v.label) for v in answers], window, threshold, drop)
        out.append(
            {
                "annotator": annotator,
                **{key: summary[key] for key in ("n_gold", "n_correct", "accuracy", "latest_window", "flagged")},
                "reasons": summary["reasons"],
            }
        )
    return out


def join_label_issues(report: dict[str, Any], issues_path: str | Path) -> dict[str, Any]:
    """Add each annotator's rate of flagged labels (labelloop label-issues --format json) to the report: under
    "label_issues" per row (labels judged, flagged, rate), and annotators found only there as rows without gold."""
    path = Path(issues_path)
    try:
        issues = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GoldError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GoldError(f"{path} is not valid JSON ({exc})") from None
    rates = issues.get("annotators") if isinstance(issues, dict) else None
    if not isinstance(rates, list) or not all(isinstance(r, dict) and "annotator" in r for r in rates):
        raise GoldError(f"{path} is not the JSON of labelloop label-issues --format json (no annotators list)")
    by_name = {
        str(r["annotator"]): {
            "labels": int(r.get("labels", 0)),
            "flagged": int(r.get("flagged", 0)),
            "rate": r.get("rate"),
        }
        for r in rates
    }
    rows = {row["annotator"]: row for row in report["annotators"]}
    for name in by_name:
        if name not in rows:
            rows[name] = {
                "annotator": name,
                "n_gold": 0,
                "n_correct": 0,
                "accuracy": None,
                "kappa": None,
                "first_window": None,
                "latest_window": None,
                "windows": [],
                "flagged": False,
                "reasons": [],
                "errors": {},
                "notes": ["no gold answer"],
                "answers": [],
            }
            report["annotators"].append(rows[name])
    for name, row in rows.items():
        row["label_issues"] = by_name.get(name)
    report["label_issues"] = {"source": str(path), "flagged_tasks": len(issues.get("issues") or [])}
    return report


def _when(annotation: Annotation) -> tuple:
    stamp = annotation.updated_at or annotation.created_at
    return (stamp is not None, stamp or datetime.min.replace(tzinfo=timezone.utc), annotation.order)


def _sort_time(created_at: datetime | None, order: int) -> tuple:
    # Undated answers go last, in export order: better than guessing a time for them.
    return (created_at is None, created_at or datetime.min.replace(tzinfo=timezone.utc), order)


# ---------------------------------------------------------------------------------------------------------------
# Output


def format_table(report: dict[str, Any]) -> str:
    """The report as readable text: one row per annotator, then flags, error confusions, counts and notes."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{round(value, 3) + 0.0:.3f}"

    lines = [
        f"Gold drift of {report['export']} against {report['gold']['source']} ({report['gold']['items']} gold items)",
        f"Rule: {report['rule']}",
        "",
        f"  {'annotator':<24} {'gold':>5} {'correct':>8} {'accuracy':>9} {'kappa':>7} {'first win':>10} "
        f"{'latest win':>11}  status",
    ]
    joined = "label_issues" in report
    if joined:
        lines[-1] += "  flagged labels (label_issues)"
    for row in report["annotators"]:
        status = "FLAGGED" if row["flagged"] else ("no gold" if not row["n_gold"] else "ok")
        line = (
            f"  {row['annotator']:<24} {row['n_gold']:>5} {row['n_correct']:>8} {num(row['accuracy']):>9} "
            f"{num(row['kappa']):>7} {num(row['first_window']):>10} {num(row['latest_window']):>11}  {status}"
        )
        if joined:
            li = row.get("label_issues")
            line = f"{line:<96}" + (f"  {li['flagged']} of {li['labels']} ({100 * li['rate']:.1f}%)" if li else "  -")
        lines.append(line)
    if not report["annotators"]:
        lines.append("  (no annotators)")
    flagged = [row for row in report["annotators"] if row["flagged"]]
    if flagged:
        lines += ["", "Flagged"] + [f"  {row['annotator']}: {'; '.join(row['reasons'])}" for row in flagged]
    with_errors = [row for row in report["annotators"] if row["errors"]]
    if with_errors:
        lines += ["", "Errors on gold (gold label -> their label x count)"]
        for row in with_errors:
            pairs = [
                f"{gold_label} -> {given} x{n}"
                for gold_label, given_counts in row["errors"].items()
                for given, n in given_counts.items()
            ]
            lines.append(f"  {row['annotator']}: {', '.join(pairs)}")
    lines += ["", "Counts"] + [f"  {key.replace('_', ' '):<38} {value}" for key, value in report["counts"].items()]
    per_annotator = [f"{row['annotator']}: {note}" for row in report["annotators"] for note in row["notes"]]
    if report["notes"] or per_annotator:
        lines += ["", "Notes"] + [f"  - {note}" for note in report["notes"] + per_annotator]
    return "\n".join(lines)


def plot_drift(report: dict[str, Any], path: str | Path) -> Path:
    """A PNG of each annotator's windowed gold accuracy over their gold answers, the threshold dashed, flagged
    annotators drawn thick with an X at their latest window. Annotators with fewer answers than the window get one
    hollow dot at their overall accuracy. With label issues joined, a second panel shows each annotator's rate of
    flagged labels."""
    # The object API with an explicit Agg canvas: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    window, threshold = report["window"], report["threshold"]
    joined = [row for row in report["annotators"] if row.get("label_issues")]
    fig = Figure(figsize=(9, 8.5 if joined else 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(2, 1, 1) if joined else fig.add_subplot()
    if joined:
        bars = fig.add_subplot(2, 1, 2)
        names = [row["annotator"] for row in joined]
        rates = [100 * row["label_issues"]["rate"] for row in joined]
        bars.barh(names, rates, color=["C3" if row["flagged"] else "C0" for row in joined])
        for y, row in enumerate(joined):
            li = row["label_issues"]
            bars.text(rates[y], y, f" {li['flagged']} of {li['labels']}", va="center", fontsize=9)
        bars.invert_yaxis()
        bars.set_xlabel("labels flagged as likely wrong by labelloop label-issues (%)")
        bars.set_title("Flagged labels per annotator (red: flagged on gold)")
        bars.grid(True, axis="x", alpha=0.3)
    colors = [f"C{i}" for i in range(10)]
    plotted = 0
    for i, row in enumerate(row for row in report["annotators"] if row["n_gold"]):
        color = colors[i % len(colors)]
        name = f"annotator {row['annotator']}" + (" (flagged)" if row["flagged"] else "")
        if row["windows"]:
            x = list(range(window, window + len(row["windows"])))
            ax.plot(x, row["windows"], color=color, linewidth=3.0 if row["flagged"] else 1.5, label=name)
            if row["flagged"]:
                ax.plot(x[-1], row["windows"][-1], marker="X", markersize=13, color=color, markeredgecolor="black")
        else:
            ax.plot(
                row["n_gold"],
                row["accuracy"],
                marker="o",
                markersize=9,
                linestyle="none",
                markerfacecolor="none",
                markeredgewidth=2,
                color=color,
                label=f"{name}, {row['n_gold']} answer(s), no window yet",
            )
        plotted += 1
    ax.axhline(threshold, color="gray", linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}")
    if not plotted:
        ax.text(0.5, 0.5, "no gold answers in this export", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("gold answers in time order (each point: the window ending at that answer)")
    ax.set_ylabel(f"accuracy over the last {window} gold answers")
    ax.set_title("Annotator accuracy on gold over time")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    # Outside the axes, so it never hides the low end where flagged lines go.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, borderaxespad=0)
    fig.tight_layout()
    path = Path(path)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise GoldError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
