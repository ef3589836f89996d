"""labelloop sync-project: error paths through the CLI (its task files: test_task_files.py; the guidelines as
Label Studio's instructions: test_instructions.py)."""

import os

import pytest
from labelstudio import free_port, run_sync
from support.sync_project import assert_one_line_error

# ---------------------------------------------------------------- CLI errors


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


# ---------------------------------------------------------------- the project page in the description


def test_the_page_link_keeps_the_teams_description_and_is_written_once():
    from backend.labelstudio.sync import PAGE_LINE, with_page_link

    page = "http://backend:9090/projects/3"
    assert with_page_link("", page) == PAGE_LINE + page
    team = "Label each review.\nAsk Ana when unsure."
    linked = with_page_link(team, page)
    assert linked == f"{team}\n\n{PAGE_LINE}{page}"
    assert with_page_link(linked, page) == linked  # connecting again changes nothing
    moved = with_page_link(linked + "\nA later note.", "https://ml.example/projects/3")
    assert moved == f"{team}\n\n{PAGE_LINE}https://ml.example/projects/3\nA later note."  # replaced where it stood
    assert moved.count(PAGE_LINE) == 1
