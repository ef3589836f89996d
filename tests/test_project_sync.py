"""scripts/sync_project.py: error paths through the CLI (its task files: test_task_files.py; the guidelines as
Label Studio's instructions: test_instructions.py)."""

import os

import pytest
from labelstudio import ROOT, free_port, run_sync

GUIDELINES = ROOT / "guidelines" / "sentiment.md"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- CLI errors


def assert_one_line_error(done, *fragments):
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("command", ["project", "import", "connect", "export"])
def test_every_subcommand_has_help(command):
    done = run_sync(command, "--help", url="", api_key="")
    assert done.returncode == 0 and "usage:" in done.stdout and len(done.stdout.splitlines()) > 5


def test_unreachable_label_studio():
    url = f"http://127.0.0.1:{free_port()}"
    done = run_sync("export", "--project", "1", "--out", os.devnull, url=url, api_key="x")
    assert_one_line_error(done, "cannot reach Label Studio", url)


def test_missing_settings():
    assert_one_line_error(run_sync("project", "--title", "T", url="", api_key="x"), "LABEL_STUDIO_URL is not set")
    done = run_sync("project", "--title", "T", url="http://127.0.0.1:1", api_key="")
    assert_one_line_error(done, "LABEL_STUDIO_API_KEY is not set")


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
