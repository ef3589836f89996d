"""backend/labelstudio/task_files.py: task files read into tasks with their data hash, and the errors they give."""

import json

import pytest

from backend.labelstudio import task_files
from backend.labelstudio.client import SyncError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_json_list_of_data_dicts_and_of_tasks(tmp_path):
    plain = write(tmp_path / "plain.json", json.dumps([{"text": "Great fun", "id": 7}, {"text": "Dull"}]))
    tasks = task_files.read_tasks(plain)
    assert [t["data"]["text"] for t in tasks] == ["Great fun", "Dull"]
    assert all(set(t) == {"data"} and len(t["data"]["_hash"]) == 20 for t in tasks)

    wrapped = [{"data": {"text": "Great fun", "id": 7}, "predictions": [], "id": 99, "created_at": "yesterday"}]
    tasks = task_files.read_tasks(write(tmp_path / "tasks.json", json.dumps(wrapped)))
    # Task-level fields Label Studio would not accept on import (id, created_at) are dropped.
    assert set(tasks[0]) == {"data", "predictions"}
    # The same data hashes the same whether it came as a task or as a bare data object.
    assert tasks[0]["data"]["_hash"] == task_files.read_tasks(plain)[0]["data"]["_hash"]


def test_jsonl_skips_blank_lines_and_names_the_bad_line(tmp_path):
    good = write(tmp_path / "a.jsonl", '{"text": "One"}\n\n{"data": {"text": "Two"}}\n')
    assert [t["data"]["text"] for t in task_files.read_tasks(good)] == ["One", "Two"]
    bad = write(tmp_path / "b.jsonl", '{"text": "One"}\n{"text": \n')
    with pytest.raises(SyncError, match=r"b\.jsonl:2: not valid JSON"):
        task_files.read_tasks(bad)


def test_csv_with_text_column_or_text_key(tmp_path):
    csv_file = write(tmp_path / "r.csv", 'text,movie\n"Loved it, truly",up\n"Meh.\nSecond line",cars\n')
    tasks = task_files.read_tasks(csv_file)
    assert [t["data"]["text"] for t in tasks] == ["Loved it, truly", "Meh.\nSecond line"]
    assert tasks[0]["data"]["movie"] == "up"

    other = write(tmp_path / "o.csv", "review,movie\nFine,up\n")
    with pytest.raises(SyncError, match="no 'text' column .*review, movie.*--text-key"):
        task_files.read_tasks(other)
    assert task_files.read_tasks(other, text_key="review")[0]["data"]["review"] == "Fine"


def test_tsv_and_utf8_bom(tmp_path):
    tsv = tmp_path / "r.tsv"
    tsv.write_bytes("\ufefftext\tmovie\nÜber gut\tup\n".encode("utf-8"))
    assert task_files.read_tasks(tsv)[0]["data"] == {
        "text": "Über gut",
        "movie": "up",
        "_hash": task_files.task_hash({"text": "Über gut", "movie": "up"}),
    }


def test_duplicates_in_a_file_are_kept_once(tmp_path):
    rows = [{"text": "Same", "n": 1}, {"n": 1, "text": "Same"}, {"text": "Other", "n": 1}]
    tasks = task_files.read_tasks(write(tmp_path / "d.json", json.dumps(rows)))
    assert [t["data"]["text"] for t in tasks] == ["Same", "Other"]


def test_hash_ignores_key_order_and_an_existing_hash():
    data = {"text": "x", "movie": "m"}
    assert task_files.task_hash(data) == task_files.task_hash({"movie": "m", "text": "x"})
    assert task_files.task_hash({**data, "_hash": "old"}) == task_files.task_hash(data)
    assert task_files.task_hash(data) != task_files.task_hash({**data, "movie": "n"})


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
    with pytest.raises(SyncError, match=message):
        task_files.read_tasks(write(tmp_path / name, content))


def test_missing_file(tmp_path):
    with pytest.raises(SyncError, match="cannot read .*missing.csv"):
        task_files.read_tasks(tmp_path / "missing.csv")


def test_default_text_key_follows_the_labeling_config():
    config = (
        '<View><Text name="body" value="$review"/>'
        '<Choices name="m" toName="body"><Choice value="A"/><Choice value="B"/></Choices></View>'
    )
    assert task_files.default_text_key(config) == "review"
    assert task_files.default_text_key("<View></View>") == "text"
