"""backend/labelstudio/client.py: calls through a connected client, and their errors as one line."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from backend.labelstudio import client as ls_client
from backend.labelstudio import sync, tasks

URL = "http://ls.example:8080"


class FakeHttp:
    """The SDK's httpx client, answering every request with `status` and `text`."""

    def __init__(self, status: int, text: str = ""):
        self.status, self.text, self.sent = status, text, []

    def request(self, path, method, **kwargs):
        self.sent.append((method, path, kwargs))
        return SimpleNamespace(status_code=self.status, text=self.text)


def fake_client(http: FakeHttp | None = None) -> SimpleNamespace:
    wrapper = SimpleNamespace(get_base_url=lambda: URL + "/", httpx_client=http)
    return SimpleNamespace(_client_wrapper=wrapper)


def test_an_api_error_names_the_server_the_step_and_whether_a_retry_may_help():
    with pytest.raises(ls_client.LabelStudioUnavailable) as caught:
        with ls_client.calling(fake_client(), "reading project 7"):
            raise ApiError(status_code=404, body={"detail": "Not found."})
    assert str(caught.value) == f"Label Studio at {URL} answered HTTP 404: Not found. when reading project 7"
    assert caught.value.status == 404 and not caught.value.retryable

    with pytest.raises(ls_client.LabelStudioUnavailable) as caught:
        with ls_client.calling(fake_client(), "reading project 7"):
            raise ApiError(status_code=503, body="busy")
    assert caught.value.status == 503 and caught.value.retryable


def test_a_network_error_is_one_retryable_line():
    with pytest.raises(ls_client.LabelStudioUnavailable) as caught:
        with ls_client.calling(fake_client(), "listing tabs"):
            raise httpx.ConnectError("[Errno 111] Connection refused\nmore")
    assert (
        str(caught.value)
        == f"cannot reach Label Studio at {URL} (listing tabs): connection refused or host unreachable"
    )
    assert caught.value.status is None and caught.value.retryable


def test_other_errors_are_not_taken_for_label_studio_failures():
    with pytest.raises(KeyError):
        with ls_client.calling(fake_client(), "anything"):
            raise KeyError("a bug")


def test_the_server_is_named_by_the_client_or_generically():
    assert ls_client.base_url(LabelStudio(base_url=URL + "/", api_key="x" * 40)) == URL
    assert ls_client.base_url(object()) == "Label Studio"


def test_a_raw_request_returns_the_answer_or_raises_on_an_error_status():
    http = FakeHttp(200)
    answer = ls_client.request(fake_client(http), "DELETE", "api/x/", "deleting x", json={"a": 1})
    assert answer.status_code == 200 and http.sent == [("DELETE", "api/x/", {"json": {"a": 1}})]

    with pytest.raises(ls_client.LabelStudioUnavailable, match=r"answered HTTP 400 when deleting x: bad version") as e:
        ls_client.request(fake_client(FakeHttp(400, "bad version")), "DELETE", "api/x/", "deleting x")
    assert e.value.status == 400 and not e.value.retryable


def test_the_errors_keep_their_old_homes_and_family():
    assert sync.SyncError is ls_client.SyncError
    assert tasks.LabelStudioUnavailable is ls_client.LabelStudioUnavailable
    assert issubclass(ls_client.LabelStudioUnavailable, ls_client.LabelStudioError)
