"""The saved Personal Access Token (backend/dev/labelstudio.py create_token) against a real Label Studio behind a proxy
that misbehaves on purpose: a slow or failing Label Studio must be waited for, not taken for a revoked token (a
second token answers 409), while a token revoked in Label Studio must still be replaced."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import labelstudio
import pytest
import requests

from backend.dev import labelstudio as ls_server

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

# Well above Label Studio's usual answer here (a login hashes a password: under a second), well below a test's
# patience; SLOW holds an answer past it.
TIMEOUT = 2.0
SLOW = TIMEOUT + 1.5
TRIES = 5
REFRESH = ("POST", "/api/token/refresh/")
CREATE = ("POST", "/api/token/")
LIST = ("GET", "/api/token/")
REVOKE = ("POST", "/api/token/blacklist/")
LOGIN_FORM = ("GET", "/user/login/")
LOGIN = ("POST", "/user/login/")

# Hop-by-hop headers, and the length, which the proxy sets itself.
_NOT_COPIED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}


class FaultyProxy:
    """A threaded HTTP proxy on 127.0.0.1 in front of Label Studio. For a (method, path) it plays a script of
    faults, one per request, then forwards faithfully; it counts every request by (method, path).

    Faults: "502"/"503" answer that status without forwarding; "drop" closes the connection without forwarding;
    "lose" forwards, then closes without answering (Label Studio acted, the client never hears); "slow" forwards
    and holds the answer for SLOW seconds, past the client's timeout.
    """

    def __init__(self, target: str):
        self.target = urlsplit(target)
        self.faults: dict[tuple[str, str], list[str]] = {}
        self.seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail(self, request: tuple[str, str], *faults: str) -> None:
        self.faults[request] = list(faults)

    def _next_fault(self, request: tuple[str, str]) -> str | None:
        with self._lock:
            self.seen[request] += 1
            script = self.faults.get(request)
            return script.pop(0) if script else None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        fault = self._next_fault((handler.command, path))
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if fault == "drop":
            return  # the server closes the socket: the client sees the connection dropped
        if fault in ("502", "503"):
            self._answer(handler, int(fault), [("Content-Type", "text/plain")], b"Bad Gateway or Unavailable")
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _NOT_COPIED}
        upstream = http.client.HTTPConnection(self.target.hostname, self.target.port, timeout=30)
        try:
            upstream.request(handler.command, handler.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            status, answer_headers, answer_body = answer.status, answer.getheaders(), answer.read()
        finally:
            upstream.close()
        if fault == "lose":
            return
        if fault == "slow":
            time.sleep(SLOW)
        self._answer(handler, status, answer_headers, answer_body)

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, status: int, headers: list, body: bytes) -> None:
        try:
            handler.send_response_only(status)
            for name, value in headers:
                if name.lower() not in _NOT_COPIED:
                    handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            pass  # the client gave up waiting (the "slow" fault)

    def __enter__(self) -> "FaultyProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def person(label_studio) -> ls_server.User:
    """An annotator of our own: these tests revoke tokens, which the admin's other tests must keep."""
    return label_studio.create_user(f"token-{uuid.uuid4().hex[:8]}@example.com", "token-pass-1234")


@pytest.fixture
def proxy(label_studio):
    with FaultyProxy(label_studio.url) as running:
        yield running


def live_tokens(label_studio, user: ls_server.User) -> list[str]:
    """The user's unrevoked tokens, shortened, straight from Label Studio (as Account & Settings lists them)."""
    session = label_studio.login(user.email, user.password)
    answer = session.get(f"{label_studio.url}/api/token/", timeout=10)
    answer.raise_for_status()
    return [item["token"] for item in answer.json()]


def revoke_all(label_studio, user: ls_server.User) -> None:
    """Revoke the user's tokens the way the UI's Revoke button does: the listed token, posted to the blacklist."""
    session = label_studio.login(user.email, user.password)
    for short in live_tokens(label_studio, user):
        answer = session.post(f"{label_studio.url}/api/token/blacklist/", json={"refresh": short}, timeout=10)
        assert answer.status_code == 204, answer.text


def refresh(label_studio, token: str) -> requests.Response:
    return requests.post(f"{label_studio.url}/api/token/refresh/", json={"refresh": token}, timeout=10)


@pytest.fixture
def saved(label_studio, person, tmp_path) -> str:
    """The person's one live token, freshly made directly in Label Studio, and saved where the client looks."""
    revoke_all(label_studio, person)
    answer = label_studio.login(person.email, person.password).post(f"{label_studio.url}/api/token/", timeout=10)
    assert answer.status_code == 201, answer.text
    token = answer.json()["token"]
    (tmp_path / ls_server.TOKENS_FILE).write_text(json.dumps({person.email: token}))
    return token


def client(tmp_path, proxy: FaultyProxy, tries: int = TRIES) -> ls_server.LabelStudioServer:
    """The token half of LabelStudioServer (it never starts Label Studio here), speaking through the proxy."""
    ls = ls_server.LabelStudioServer(
        tmp_path, admin_password="unused-here", timeout=TIMEOUT, tries=tries, retry_delay=0.05
    )
    ls.url = proxy.url
    return ls


def saved_in(tmp_path, user: ls_server.User) -> str:
    return json.loads((tmp_path / ls_server.TOKENS_FILE).read_text())[user.email]


def test_a_saved_token_survives_a_failing_and_slow_check(label_studio, person, saved, proxy, tmp_path):
    proxy.fail(REFRESH, "503", "drop", "502", "slow")
    assert client(tmp_path, proxy).create_token(person.email, person.password) == saved
    assert proxy.seen[REFRESH] == 5
    assert proxy.seen[CREATE] == 0 and proxy.seen[LOGIN] == 0  # no second token was asked for
    assert saved_in(tmp_path, person) == saved
    assert refresh(label_studio, saved).status_code == 200


def test_a_revoked_token_is_what_label_studio_answers_401_for(label_studio, person, saved):
    revoke_all(label_studio, person)
    # Label Studio's error handler drops simplejwt's "token_not_valid" code and keeps only the detail.
    answer = refresh(label_studio, saved)
    assert (answer.status_code, answer.json()["detail"]) == (401, "Token is blacklisted")
    answer = refresh(label_studio, "not-a-token")
    assert answer.status_code == 401, answer.text


@pytest.mark.parametrize("fault", ["lose", "slow", "503"])
def test_a_revoked_token_is_replaced_despite_hiccups(label_studio, person, saved, proxy, tmp_path, fault):
    revoke_all(label_studio, person)
    proxy.fail(REFRESH, "503")
    proxy.fail(LOGIN_FORM, "502")
    proxy.fail(LOGIN, "drop")
    proxy.fail(LIST, "503")
    # "lose" and "slow": Label Studio makes a token whose answer never arrives; asking again would answer 409.
    proxy.fail(CREATE, fault)

    new = client(tmp_path, proxy).create_token(person.email, person.password)

    assert new != saved and saved_in(tmp_path, person) == new
    assert refresh(label_studio, new).status_code == 200
    assert proxy.seen[CREATE] == 2
    # The token whose answer was lost is revoked: the new one is the only one left.
    live = live_tokens(label_studio, person)
    assert len(live) == 1 and new.startswith(live[0] + ".")
    assert proxy.seen[REVOKE] == (0 if fault == "503" else 1)


def assert_one_readable_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert type(error.value) is ls_server.LocalLabelStudioError  # not LoginError: the password may well be right
    # The proxy's port may contain "409" too: look for the status only outside the URL.
    beyond_url = re.sub(r"https?://\S+", "", message)
    assert "\n" not in message and "409" not in beyond_url and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_a_check_that_keeps_failing_is_one_error_and_no_new_token(person, saved, proxy, tmp_path, fault):
    proxy.fail(REFRESH, *[fault] * 10)
    with pytest.raises(ls_server.LocalLabelStudioError) as error:
        client(tmp_path, proxy, tries=3).create_token(person.email, person.password)
    assert_one_readable_line(error, "did not answer the token check", "3 tries", proxy.url)
    assert proxy.seen[REFRESH] == 3 and proxy.seen[CREATE] == 0
    assert saved_in(tmp_path, person) == saved


def test_a_login_that_keeps_failing_is_one_error(label_studio, person, saved, proxy, tmp_path):
    revoke_all(label_studio, person)
    proxy.fail(LOGIN, *["502"] * 10)
    with pytest.raises(ls_server.LocalLabelStudioError) as error:
        client(tmp_path, proxy, tries=3).create_token(person.email, person.password)
    assert_one_readable_line(error, f"did not answer the login of {person.email}", "HTTP 502")
    assert proxy.seen[CREATE] == 0


def test_token_requests_that_keep_getting_lost_leave_no_token_behind(label_studio, person, saved, proxy, tmp_path):
    revoke_all(label_studio, person)
    proxy.fail(CREATE, *["lose"] * 3)
    ls = client(tmp_path, proxy, tries=3)
    with pytest.raises(ls_server.LocalLabelStudioError) as error:
        ls.create_token(person.email, person.password)
    assert_one_readable_line(error, "did not answer the token request", "connection refused or dropped")
    assert proxy.seen[CREATE] == 3
    # Every token made for a lost answer was revoked, so once Label Studio answers again the next start works.
    assert live_tokens(label_studio, person) == []
    new = ls.create_token(person.email, person.password)
    assert refresh(label_studio, new).status_code == 200


def test_an_unsaved_live_token_is_a_clear_error_without_asking_for_another(person, saved, proxy, tmp_path):
    (tmp_path / ls_server.TOKENS_FILE).unlink()  # the token is live in Label Studio, but nobody kept it
    with pytest.raises(ls_server.LocalLabelStudioError, match="already has a Personal Access Token that is not saved"):
        client(tmp_path, proxy).create_token(person.email, person.password)
    assert proxy.seen[CREATE] == 0
