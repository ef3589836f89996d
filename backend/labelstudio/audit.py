"""The finish audit in Label Studio: a Data Manager tab ("Finish audit") holding the tasks drawn at random for
people to label, and the plan they were drawn by (backend/loop/finish.py), kept in the tab's data under STATE_KEY.

The plan must outlive the run that drew it: the audit's labels come later, and the next run must test the same
model on the same sample. Deleting the tab forgets the plan (the labels people gave stay theirs).

A config of one question keeps its plan in format 1: the plan's fields are that question's. A config of several
keeps format 2: the same fields, its first question's (`tasks` is the whole audit: every task people label), and
under `questions` each question's own plan (QuestionPlan). A format-1 plan read for a config of several questions
is its first question's plan; the others have none.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backend.errors import LabelloopError
from backend.labelstudio import tabs

TITLE = "Finish audit"
STATE_KEY = "labelloop_finish_audit"
FORMAT = 1  # one question's plan; a plan of a format not in FORMATS is refused with what to do
FORMATS = (1, 2)  # 2: several questions, each with its plan under "questions"


class AuditStateError(LabelloopError, RuntimeError):
    """The tab holds a plan this version cannot read."""

    http_status = 409


@dataclass(frozen=True)
class QuestionPlan:
    """One question's part of an audit."""

    tasks: list[int]  # drawn at random from `region`: the question is tested on these alone
    region: list[int]  # the open tasks the question's model proposed to label when the audit was drawn
    floor: float | None  # the confidence that bounded the region; None: the question has no audit
    expected: float | None  # the out-of-fold accuracy above the floor that sized its sample
    trained_on: list[int]  # the tasks whose people's answer to the question its model was fitted on


@dataclass(frozen=True)
class Audit:
    tasks: list[int]  # drawn at random, for people to label (with several questions: every question's sample)
    region: list[int]  # the open tasks the model proposed to label when the audit was drawn (the first question's)
    floor: float | None  # the confidence that bounded the region
    expected: float | None  # the out-of-fold accuracy above the floor that sized the audit
    trained_on: list[int]  # the human-labeled tasks the model was fitted on: it is refitted on them alone
    target: float
    level: float
    drawn: str  # when, UTC
    questions: dict[str, dict] | None = None  # several questions: each one's QuestionPlan fields, by from_name

    def plans(self, first: str) -> dict[str, QuestionPlan]:
        """Each question's plan by from_name; a plan of one question (format 1) is the question `first`'s."""
        if self.questions is None:
            return {first: QuestionPlan(self.tasks, self.region, self.floor, self.expected, self.trained_on)}
        return {name: QuestionPlan(**fields) for name, fields in self.questions.items()}


def as_dict(audit: Audit) -> dict:
    """The plan's fields, as the tab keeps them (without `questions` for a plan of one question)."""
    fields = asdict(audit)
    if fields["questions"] is None:
        del fields["questions"]
    return fields


def read(client: Any, project_id: int) -> tuple[Audit | None, int | None]:
    """The project's audit plan and its tab's id; (None, None) without one."""
    view = tabs.find(client, project_id, TITLE)
    if view is None:
        return None, None
    state = view.data.get(STATE_KEY)
    if not isinstance(state, dict) or state.get("format") not in FORMATS:
        raise AuditStateError(
            f"the {TITLE!r} tab of project {project_id} holds no audit plan this version can read (format "
            f"{state.get('format') if isinstance(state, dict) else None!r}, expected "
            f"{' or '.join(map(str, FORMATS))}): delete the tab, or run with --new-audit, to draw a new one"
        )
    try:
        fields = {name: state[name] for name in Audit.__dataclass_fields__ if name != "questions"}
        questions = state["questions"] if state["format"] == 2 else None
        plan = Audit(**fields, questions=questions)
        if questions is not None and (not isinstance(questions, dict) or not questions):
            raise TypeError("no question's plan")
        plan.plans("")  # every question's plan has its fields
        return plan, int(view.id)
    except (KeyError, TypeError) as e:
        raise AuditStateError(
            f"the {TITLE!r} tab of project {project_id} holds a damaged audit plan ({e}): "
            "run with --new-audit to draw a new one"
        ) from None


def write(client: Any, project_id: int, audit: Audit) -> int:
    """Make or replace the audit tab; its id."""
    state = {"format": 1 if audit.questions is None else 2, **as_dict(audit)}
    return tabs.write(client, project_id, tabs.holding(TITLE, audit.tasks, **{STATE_KEY: state}))


def delete(client: Any, project_id: int) -> bool:
    return tabs.delete(client, project_id, TITLE)
