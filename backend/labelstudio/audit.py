"""The finish audit in Label Studio: a Data Manager tab ("Finish audit") holding the tasks drawn at random for
people to label, and the plan they were drawn by (backend/loop/finish.py), kept in the tab's data under STATE_KEY.

The plan must outlive the run that drew it: the audit's labels come later, and the next run must test the same
model on the same sample. Deleting the tab forgets the plan (the labels people gave stay theirs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from backend.errors import LabelloopError
from backend.labelstudio import tabs

TITLE = "Finish audit"
STATE_KEY = "labelloop_finish_audit"
FORMAT = 1  # the plan's layout; a plan of another format is refused with what to do


class AuditStateError(LabelloopError, RuntimeError):
    """The tab holds a plan this version cannot read."""


@dataclass(frozen=True)
class Audit:
    tasks: list[int]  # drawn at random from `region`, for people to label
    region: list[int]  # the open tasks the model proposed to label when the audit was drawn
    floor: float  # the confidence that bounded the region
    expected: float | None  # the out-of-fold accuracy above the floor that sized the audit
    trained_on: list[int]  # the human-labeled tasks the model was fitted on: it is refitted on them alone
    target: float
    level: float
    drawn: str  # when, UTC


def read(client: Any, project_id: int) -> tuple[Audit | None, int | None]:
    """The project's audit plan and its tab's id; (None, None) without one."""
    view = tabs.find(client, project_id, TITLE)
    if view is None:
        return None, None
    state = view.data.get(STATE_KEY)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise AuditStateError(
            f"the {TITLE!r} tab of project {project_id} holds no audit plan this version can read (format "
            f"{state.get('format') if isinstance(state, dict) else None!r}, expected {FORMAT}): delete the tab, or "
            "run with --new-audit, to draw a new one"
        )
    try:
        fields = {name: state[name] for name in Audit.__dataclass_fields__}
        return Audit(**fields), int(view.id)
    except (KeyError, TypeError) as e:
        raise AuditStateError(
            f"the {TITLE!r} tab of project {project_id} holds a damaged audit plan ({e}): "
            "run with --new-audit to draw a new one"
        ) from None


def write(client: Any, project_id: int, audit: Audit) -> int:
    """Make or replace the audit tab; its id."""
    return tabs.write(
        client, project_id, tabs.holding(TITLE, audit.tasks, **{STATE_KEY: {"format": FORMAT, **asdict(audit)}})
    )


def delete(client: Any, project_id: int) -> bool:
    return tabs.delete(client, project_id, TITLE)
