"""scripts/sync_project.py: task file parsing and rendering without Label Studio, error paths through the CLI."""

import json
import os

import pytest

from backend.llm import guidelines as guides
from backend.labelstudio import sync
from labelstudio import ROOT, free_port, run_sync

GUIDELINES = ROOT / "guidelines" / "sentiment.md"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- task files


def test_json_list_of_data_dicts_and_of_tasks(tmp_path):
    plain = write(tmp_path / "plain.json", json.dumps([{"text": "Great fun", "id": 7}, {"text": "Dull"}]))
    tasks = sync.read_tasks(plain)
    assert [t["data"]["text"] for t in tasks] == ["Great fun", "Dull"]
    assert all(set(t) == {"data"} and len(t["data"]["_hash"]) == 20 for t in tasks)

    wrapped = [{"data": {"text": "Great fun", "id": 7}, "predictions": [], "id": 99, "created_at": "yesterday"}]
    tasks = sync.read_tasks(write(tmp_path / "tasks.json", json.dumps(wrapped)))
    # Task-level fields Label Studio would not accept on import (id, created_at) are dropped.
    assert set(tasks[0]) == {"data", "predictions"}
    # The same data hashes the same whether it came as a task or as a bare data object.
    assert tasks[0]["data"]["_hash"] == sync.read_tasks(plain)[0]["data"]["_hash"]


def test_jsonl_skips_blank_lines_and_names_the_bad_line(tmp_path):
    good = write(tmp_path / "a.jsonl", '{"text": "One"}\n\n{"data": {"text": "Two"}}\n')
    assert [t["data"]["text"] for t in sync.read_tasks(good)] == ["One", "Two"]
    bad = write(tmp_path / "b.jsonl", '{"text": "One"}\n{"text": \n')
    with pytest.raises(sync.SyncError, match=r"b\.jsonl:2: not valid JSON"):
        sync.read_tasks(bad)


def test_csv_with_text_column_or_text_key(tmp_path):
    csv_file = write(tmp_path / "r.csv", 'text,movie\n"Loved it, truly",up\n"Meh.\nSecond line",cars\n')
    tasks = sync.read_tasks(csv_file)
    assert [t["data"]["text"] for t in tasks] == ["Loved it, truly", "Meh.\nSecond line"]
    assert tasks[0]["data"]["movie"] == "up"

    other = write(tmp_path / "o.csv", "review,movie\nFine,up\n")
    with pytest.raises(sync.SyncError, match="no 'text' column .*review, movie.*--text-key"):
        sync.read_tasks(other)
    assert sync.read_tasks(other, text_key="review")[0]["data"]["review"] == "Fine"


def test_tsv_and_utf8_bom(tmp_path):
    tsv = tmp_path / "r.tsv"
    tsv.write_bytes("\ufefftext\tmovie\nÜber gut\tup\n".encode("utf-8"))
    assert sync.read_tasks(tsv)[0]["data"] == {
        "text": "Über gut",
        "movie": "up",
        "_hash": sync.task_hash({"text": "Über gut", "movie": "up"}),
    }


def test_duplicates_in_a_file_are_kept_once(tmp_path):
    rows = [{"text": "Same", "n": 1}, {"n": 1, "text": "Same"}, {"text": "Other", "n": 1}]
    tasks = sync.read_tasks(write(tmp_path / "d.json", json.dumps(rows)))
    assert [t["data"]["text"] for t in tasks] == ["Same", "Other"]


def test_hash_ignores_key_order_and_an_existing_hash():
    data = {"text": "x", "movie": "m"}
    assert sync.task_hash(data) == sync.task_hash({"movie": "m", "text": "x"})
    assert sync.task_hash({**data, "_hash": "old"}) == sync.task_hash(data)
    assert sync.task_hash(data) != sync.task_hash({**data, "movie": "n"})


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("t.txt", "hello", "unknown file type .txt"),
        ("t.json", "{not json", "not valid JSON"),
        ("t.json", '"a string"', "expected a list of tasks"),
        ("t.json", "[1, 2]", "item 1: expected a JSON object"),
        ("t.json", '[{"text": "  "}]', "task 1 has no text in 'text'"),
        ("t.jsonl", '{"body": "x"}\n', "task 1 has no text in 'text'"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, name, content, message):
    with pytest.raises(sync.SyncError, match=message):
        sync.read_tasks(write(tmp_path / name, content))


def test_missing_file(tmp_path):
    with pytest.raises(sync.SyncError, match="cannot read .*missing.csv"):
        sync.read_tasks(tmp_path / "missing.csv")


def test_default_text_key_follows_the_labeling_config():
    config = (
        '<View><Text name="body" value="$review"/>'
        '<Choices name="m" toName="body"><Choice value="A"/><Choice value="B"/></Choices></View>'
    )
    assert sync.default_text_key(config) == "review"
    assert sync.default_text_key("<View></View>") == "text"


# ---------------------------------------------------------------- guidelines and files


def test_markdown_rendering():
    md = "# Title\n\nSome **bold** and *it* & <tag>.\n\n- one\n- two\n  continued\n\n1. first\n2. second\n"
    assert sync.render_markdown(md) == (
        "<h1>Title</h1>\n"
        "<p>Some <strong>bold</strong> and <em>it</em> &amp; &lt;tag&gt;.</p>\n"
        "<ul><li>one</li><li>two continued</li></ul>\n"
        "<ol><li>first</li><li>second</li></ol>"
    )


def test_guidelines_html_from_the_real_file():
    meta = guides.load(GUIDELINES)
    page = sync.guidelines_html(GUIDELINES)
    assert page.startswith(f"<h1>{meta.title}</h1>")
    assert f"Guidelines version {meta.version}" in page
    assert all(f"<h2>{heading}</h2>" in page for heading in meta.sections)
    assert "<li><strong>Positive</strong>:" in page
    assert "---" not in page  # the front matter is not shown as text


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
