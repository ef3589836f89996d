"""A record of every webhook action Label Studio sends: counts in memory, one JSON line per event on disk.

Only identifiers are kept (action, project, task, annotation), never texts or labels: the log is for
operations, and annotation content belongs in Label Studio.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any


def _id(value: Any) -> Any:
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, (int, str)) else None


class EventLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, body: dict) -> dict:
        event = {
            "at": round(time.time(), 3),
            "action": str(body.get("action")),
            "project": _id(body.get("project")),
            "task": _id(body.get("task")),
            "annotation": _id(body.get("annotation")),
        }
        if isinstance(body.get("annotations"), list):
            event["annotations"] = [_id(a) for a in body["annotations"]]
        with self._lock:
            self.counts[event["action"]] += 1
            if self.path:
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(event) + "\n")
        return event
