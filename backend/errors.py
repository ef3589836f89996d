"""The one base of labelloop's errors: every error the project raises for a person to read derives from
LabelloopError, so a command answers all of them the same way (one `error:` line) and a bug stays a traceback."""

from __future__ import annotations


class LabelloopError(Exception):
    """An error whose message is for the user: one line, says what to do.

    Each subclass says once, in `http_status`, what it is over HTTP: the web layer answers every one with that status
    and its message (4xx: the request or the input the user gave; 502/503: Label Studio or the LLM server failed or
    is not there; 500: the backend's own setup or data, which the message names)."""

    http_status: int = 500
