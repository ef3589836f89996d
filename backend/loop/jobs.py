"""Background jobs that coalesce: one run at a time per key, and requests during a run cause exactly one more.

Label Studio sends a webhook for every saved annotation and waits at most a second for the answer, so the webhook
only asks for a run. A burst of fifty annotations then costs two runs, not fifty: the one running, and one more
that sees all the labels that arrived meanwhile.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger(__name__)


class CoalescingJobs:
    def __init__(self, run: Callable[[str], object], name: str = "job") -> None:  # what run returns is dropped
        self._run = run
        self.name = name
        self._cond = threading.Condition()
        self._running: set[str] = set()
        self._pending: set[str] = set()

    def request(self, key: str) -> str:
        """ "started" (a run begins now), "queued" (one more run after the current one) or "coalesced"."""
        with self._cond:
            if key not in self._running:
                self._running.add(key)
                threading.Thread(target=self._loop, args=(key,), name=f"{self.name}-{key}", daemon=True).start()
                return "started"
            if key in self._pending:
                return "coalesced"
            self._pending.add(key)
            return "queued"

    def busy(self, key: str) -> bool:
        with self._cond:
            return key in self._running

    def wait(self, key: str, timeout: float | None = None) -> bool:
        """Block until no run for `key` is going or queued; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: key not in self._running, timeout)

    def _loop(self, key: str) -> None:
        while True:
            try:
                self._run(key)
            except Exception:  # a failed run must not stop later ones; the run reports its own failure
                log.exception("%s for %s failed", self.name, key)
            with self._cond:
                if key in self._pending:
                    self._pending.discard(key)
                    continue
                self._running.discard(key)
                self._cond.notify_all()
                return
