"""The shape of what labelloop finish writes: the finished dataset file (`FinishFile`), its rows, and the records of
--apply and --undo. Other tools read these files by key (the command's --help describes them), so a key here is a
contract: add keys, never rename one. backend/loop/finish.py builds them; mypy checks every key it writes."""

from __future__ import annotations

from typing import Any, TypedDict

from backend.loop.routing import ThresholdRecord


class QuestionEntry(TypedDict, total=False):
    """One question of one task's row."""

    source: str  # one of finish.SOURCES, for this question alone
    label: str | None  # people's answer, or the model's where source is "model"
    guess: str  # the model's answer where it answered but people label (audit, needs_person)
    probability: float  # the model's confidence in its answer (a multi-label question: its least sure decision)


class TaskRow(TypedDict, total=False):
    """A task of the dataset, listed once; the top level reads the first question."""

    id: int
    source: str  # "model" only when the model labels every question; "needs_person" when it labels some
    label: str | None
    guess: str
    probability: float
    questions: dict[str, QuestionEntry]  # by question from_name
    annotation: int  # with --apply: the model annotation Label Studio holds for the task


class Estimate(ThresholdRecord):
    """A question's chosen threshold (None: none passed; people label the question everywhere) and what its audit
    says of it: support counts the audit's labels at or above it."""

    rule: str  # "audit"
    bound: str  # one of finish.BOUNDS
    model_labeled: int


class AuditSummary(TypedDict):
    """A question's audit (the top level's adds tab, drawn and the plan itself)."""

    status: str  # "none" | "drawn" | "waiting" | "tested"
    size: int
    labeled: int
    pending: list[int]  # audit tasks still without people's answer
    region_tasks: int
    floor: float | None  # the region's confidence floor
    expected: float | None  # the out-of-fold accuracy above the floor that sized the audit


class DatasetAudit(AuditSummary):
    tab: int | None  # the Data Manager tab holding the audit, once --apply kept it
    drawn: str | None  # when the plan was drawn (UTC)
    plan: dict[str, Any] | None  # audit.as_dict: what the next run tests


class QuestionSummary(TypedDict):
    """One question's part of the dataset."""

    multiple: bool
    labels: list[str]
    confidence: str  # what a confidence means for this question, in words
    model: dict[str, Any]  # kind, trained_on, fallback, llm_version, features
    estimate: Estimate
    audit: AuditSummary
    counts: dict[str, int]  # tasks by source (finish.SOURCES), on this question
    human_fraction: float | None  # of the dataset's tasks (gold, synthetic, unreadable aside), the share people label


class FinishFile(TypedDict, total=False):
    """The finished dataset (labelloop finish --out)."""

    project: int
    title: str
    created: str
    labels: list[str]  # the first question's
    model: dict[str, Any]
    estimate: Estimate
    audit: DatasetAudit
    counts: dict[str, int]  # "tasks" and each source's tasks
    tasks: list[TaskRow]
    needs_person: list[int]  # least sure first
    human_labels_read: dict[str, Any]
    questions: dict[str, QuestionSummary]
    apply: ApplyRecord  # with --apply


class Kept(TypedDict):
    task: int
    annotation: int
    label: str | None  # the first question's answer
    answers: dict[str, str]


class Removed(TypedDict):
    task: int
    annotation: int
    reason: str


class Failed(TypedDict, total=False):
    task: int | None  # None: a whole write failed
    annotation: int
    error: str


class ApplyRecord(TypedDict, total=False):
    """What --apply did (the file's "apply")."""

    mark: dict[str, Any]  # how a model annotation is marked
    created: list[Kept]
    kept: list[Kept]
    removed: list[Removed]
    skipped: list[int]  # tasks a person annotated since the plan
    failed: list[Failed]
    audit_tab: int | None  # the tab written for a newly drawn audit
    label_set_removed: bool  # a killed run's prediction set was found and deleted


class Edited(TypedDict):
    task: int
    annotation: int


class UndoRecord(TypedDict):
    """What --undo did (the file's "undo")."""

    removed: list[Removed]
    failed: list[Failed]
    kept_edited: list[Edited]  # model labels a person saved since: theirs
    audit_tab_removed: bool
    label_set_removed: bool
