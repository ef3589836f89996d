"""The one base of labelloop's errors: every error the project raises for a person to read derives from
LabelloopError, so a command answers all of them the same way (one `error:` line) and a bug stays a traceback."""

from __future__ import annotations


class LabelloopError(Exception):
    """An error whose message is for the user: one line, says what to do."""
