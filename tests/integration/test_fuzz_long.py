"""tests/unit/test_fuzz.py's four generated-request tests at full size: 600 examples each, about 2,400 requests on
the tiny model (the unit tier runs 150 each). The same strategies, client and test bodies; only the count differs."""

from __future__ import annotations

import test_fuzz
from hypothesis import given, settings
from test_fuzz import client  # noqa: F401 (the module's tiny-model client, a fixture)

LONG = settings(test_fuzz.FUZZ, max_examples=600)


@LONG
@given(body=test_fuzz.SETUP_BODIES)
def test_setup(client, body):
    test_fuzz.test_setup.hypothesis.inner_test(client, body)


@LONG
@given(body=test_fuzz.PREDICT_BODIES)
def test_predict(client, body):
    test_fuzz.test_predict.hypothesis.inner_test(client, body)


@LONG
@given(body=test_fuzz.WEBHOOK_BODIES)
def test_webhook(client, body):
    test_fuzz.test_webhook.hypothesis.inner_test(client, body)


@LONG
@given(**test_fuzz.RAW_REQUESTS)
def test_raw_requests(client, path, method, content_type, data, query):
    test_fuzz.test_raw_requests.hypothesis.inner_test(client, path, method, content_type, data, query)
