"""A checked connection to Label Studio through label-studio-sdk 2.x, from LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY,
and the calls made through it, whose SDK and network errors come out as one line (LabelStudioUnavailable).

Two kinds of API key exist. A Personal Access Token is a JWT refresh token (three dot-separated parts); the SDK
exchanges it for short-lived access tokens itself. A legacy token is an opaque string; SDK 2.x recognises it
(not a decodable JWT) and sends it as `Authorization: Token ...`, so it needs nothing special here, but Label
Studio accepts it only when legacy tokens are enabled for the organization.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
import requests
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from backend.errors import LabelloopError


class LabelStudioError(LabelloopError, RuntimeError):
    """Label Studio cannot be used as configured; the message is one line saying why and what to do."""

    http_status = 502


class SyncError(LabelloopError, RuntimeError):
    """A sync step cannot go on; the message is one line saying why."""

    http_status = 502


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio could not be reached or refused a request; the message is one line saying which and why.

    `retryable` is True for what may pass by itself (network errors, timeouts, 5xx, 429) and False for answers
    that will not change on a retry (a missing project, a rejected token or value).
    """

    http_status = 503

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status
        self.retryable = status is None or status >= 500 or status in (408, 429)


@dataclass(frozen=True)
class Connection:
    client: LabelStudio
    url: str
    token_kind: str  # "personal access token" or "legacy token"
    user_email: str


def token_kind(api_key: str) -> str:
    return "personal access token" if api_key.count(".") == 2 else "legacy token"


def describe(error: Exception) -> str:
    """One line for an SDK or HTTP error, without headers or request ids."""
    if isinstance(error, ApiError):
        body = error.body
        detail = None
        if isinstance(body, dict):
            detail = body.get("detail") or body.get("error")
            problems = body.get("validation_errors")
            if isinstance(problems, dict) and problems:
                # "Validation error" alone says nothing; the per-field messages say what to fix.
                detail = "; ".join(f"{field}: {_flatten(msgs)}" for field, msgs in problems.items())
        text = str(detail if detail is not None else body or "").replace("\n", " ").strip()
        if text.lower().startswith(("<!doctype", "<html")):
            text = "an HTML page instead of JSON"
        if len(text) > 300:
            text = text[:300] + "..."
        return f"HTTP {error.status_code}: {text}" if text else f"HTTP {error.status_code}"
    if isinstance(error, (httpx.ConnectError, requests.ConnectionError)):
        return "connection refused or host unreachable"
    if isinstance(error, (httpx.TimeoutException, requests.Timeout)):
        return "timed out"
    return f"{type(error).__name__}: {error}".splitlines()[0]


TRANSPORT_ERRORS = (ApiError, httpx.HTTPError, requests.RequestException, OSError)


def error_line(error: Exception) -> str:
    """The one line a command prints for an API, network or file error (one of TRANSPORT_ERRORS)."""
    if isinstance(error, ApiError):
        return f"Label Studio answered {describe(error)}"
    if isinstance(error, (httpx.HTTPError, requests.RequestException)):
        return f"lost the connection: {describe(error)}"
    return f"{getattr(error, 'filename', None) or 'I/O'}: {getattr(error, 'strerror', None) or error}"


def _flatten(messages: object) -> str:
    if isinstance(messages, (list, tuple)):
        return " ".join(_flatten(m) for m in messages)
    if isinstance(messages, dict):
        return " ".join(f"{k}: {_flatten(v)}" for k, v in messages.items())
    return str(messages)


def connect(url: str | None = None, api_key: str | None = None, timeout: float = 60.0) -> Connection:
    """An SDK client whose URL and key were tried with one request; LabelStudioError if either is wrong."""
    url = (url if url is not None else os.environ.get("LABEL_STUDIO_URL", "")).strip().rstrip("/")
    api_key = (api_key if api_key is not None else os.environ.get("LABEL_STUDIO_API_KEY", "")).strip()
    if not url:
        raise LabelStudioError("LABEL_STUDIO_URL is not set (e.g. http://localhost:8080)")
    if not url.startswith(("http://", "https://")):
        raise LabelStudioError(f"LABEL_STUDIO_URL={url!r} must start with http:// or https://")
    if not api_key:
        raise LabelStudioError(
            "LABEL_STUDIO_API_KEY is not set: create a Personal Access Token in Label Studio (Account & Settings)"
        )

    # A plain request first: the SDK retries refused connections with back-off, and a wrong URL deserves a
    # quick answer that names the URL rather than a 404 from some other server.
    try:
        answer = requests.get(f"{url}/api/version", timeout=min(timeout, 10))
    except requests.RequestException as e:
        raise LabelStudioError(f"cannot reach Label Studio at {url}: {describe(e)}") from None
    try:
        is_label_studio = answer.status_code == 200 and "release" in answer.json()
    except ValueError:
        is_label_studio = False
    if not is_label_studio:
        raise LabelStudioError(
            f"{url} does not look like Label Studio (GET /api/version answered HTTP {answer.status_code}); "
            "check LABEL_STUDIO_URL"
        )

    kind = token_kind(api_key)
    try:
        # The SDK checks a JWT's expiry in the constructor, so that can fail too.
        client = LabelStudio(base_url=url, api_key=api_key, timeout=timeout)
        me = client.users.whoami()
    except ApiError as e:
        if e.status_code not in (401, 403):
            raise LabelStudioError(
                f"Label Studio at {url} answered {describe(e)} when asked for the current user; check LABEL_STUDIO_URL"
            ) from None
        hint = (
            "create a new one in Label Studio (Account & Settings > Personal Access Token)"
            if kind == "personal access token"
            else "legacy tokens work only where the organization enables them; prefer a Personal Access Token"
        )
        raise LabelStudioError(
            f"Label Studio at {url} rejected LABEL_STUDIO_API_KEY ({kind}, {describe(e)}): {hint}"
        ) from None
    except (httpx.HTTPError, ValueError) as e:
        raise LabelStudioError(f"Label Studio at {url} did not answer as expected: {describe(e)}") from None
    return Connection(client=client, url=url, token_kind=kind, user_email=str(me.email or me.username or me.id))


# ---------------------------------------------------------------- calls through a connected client


def base_url(client: Any) -> str:
    """The server a client talks to, for messages; "Label Studio" if the client does not say."""
    try:
        return str(client._client_wrapper.get_base_url()).rstrip("/")
    except AttributeError:
        return "Label Studio"


@contextmanager
def calling(client: Any, doing: str) -> Iterator[None]:
    """Turn SDK and network errors inside the block into LabelStudioUnavailable naming the server and the step."""
    try:
        yield
    except ApiError as e:
        raise LabelStudioUnavailable(
            f"Label Studio at {base_url(client)} answered {describe(e)} when {doing}", status=e.status_code
        ) from None
    except (httpx.HTTPError, requests.RequestException, OSError, json.JSONDecodeError) as e:
        message = f"cannot reach Label Studio at {base_url(client)} ({doing}): {describe(e)}"
        raise LabelStudioUnavailable(message) from None


def request(client: Any, method: str, path: str, doing: str, **kwargs: Any) -> Any:
    """A request the SDK has no method for, sent with the SDK's own credentials (it refreshes a PAT itself); the
    answer, or LabelStudioUnavailable for an error status."""
    with calling(client, doing):
        answer = client._client_wrapper.httpx_client.request(path, method=method, **kwargs)
    if answer.status_code >= 400:
        raise LabelStudioUnavailable(
            f"Label Studio at {base_url(client)} answered HTTP {answer.status_code} when {doing}: {answer.text[:200]}",
            status=answer.status_code,
        )
    return answer
