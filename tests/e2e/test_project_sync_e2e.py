"""`labelloop sync-project` against a real Label Studio and a real backend; the tests without Label Studio are in tests/unit/test_project_sync.py."""

import os

import pytest
from labelstudio import run_sync
from support.sync_project import GUIDELINES, assert_one_line_error, write


@pytest.mark.e2e
@pytest.mark.parametrize("token", ["not-a-token", "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2ln"])
def test_bad_token(label_studio, token):
    done = run_sync("export", "--project", "1", "--out", os.devnull, url=label_studio.url, api_key=token)
    assert_one_line_error(done, "rejected LABEL_STUDIO_API_KEY")


@pytest.mark.e2e
def test_not_label_studio(backend_server):
    done = run_sync("export", "--project", "1", "--out", os.devnull, url=backend_server.url, api_key="x")
    assert_one_line_error(done, "does not look like Label Studio")


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args",
    [
        ["export", "--project", "99999", "--out", os.devnull],
        ["import", "--project", "99999", str(GUIDELINES)],
        ["connect", "--project", "99999", "--backend-url", "http://127.0.0.1:1"],
    ],
)
def test_unknown_project(label_studio, args):
    done = run_sync(*args, url=label_studio.url, api_key=label_studio.admin.token)
    assert_one_line_error(done, "no project 99999")


@pytest.mark.e2e
def test_config_the_backend_cannot_serve(label_studio, backend_server, tmp_path):
    config = write(
        tmp_path / "regions.xml",
        '<View><Text name="t" value="$text"/><Choices name="tags" toName="t" perRegion="true">'
        '<Choice value="Funny"/><Choice value="Sad"/></Choices></View>',
    )
    auth = {"url": label_studio.url, "api_key": label_studio.admin.token}
    created = run_sync("project", "--title", "Per-region choices", "--config", str(config), **auth)
    assert created.returncode == 0, created.stderr
    project = created.stdout.strip()
    done = run_sync("connect", "--project", project, "--backend-url", backend_server.url, **auth)
    assert_one_line_error(done, "cannot serve", "per-region")
    # Nothing half-made is left behind in the project.
    from label_studio_sdk import LabelStudio

    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    assert client.ml.list(project=int(project)) == []
