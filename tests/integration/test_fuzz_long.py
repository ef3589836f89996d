"""tests/unit/test_fuzz.py's four generated-request tests at full size: 600 examples each, about 2,400 requests on
the tiny model (the unit tier runs 150 each). The same strategies and client (tests/support/fuzz.py); only the
count differs."""

from __future__ import annotations

from hypothesis import given, settings
from support.fuzz import FUZZ, PREDICT_BODIES, RAW_REQUESTS, SETUP_BODIES, WEBHOOK_BODIES, check, client, post  # noqa: F401

LONG = settings(FUZZ, max_examples=600)


@LONG
@given(body=SETUP_BODIES)
def test_setup(client, body):
    check(post(client, "/setup", body))


@LONG
@given(body=PREDICT_BODIES)
def test_predict(client, body):
    check(post(client, "/predict", body))


@LONG
@given(body=WEBHOOK_BODIES)
def test_webhook(client, body):
    check(post(client, "/webhook", body))


@LONG
@given(**RAW_REQUESTS)
def test_raw_requests(client, path, method, content_type, data, query):
    check(client.open(path, method=method, data=data, content_type=content_type or None, query_string=query))
