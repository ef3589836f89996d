"""Task files (JSON, JSONL, CSV or TSV) read into Label Studio tasks, each carrying a hash of its data so that an
import can skip the tasks a project already has."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

from backend.labelstudio import schema as schemas
from backend.labelstudio.client import SyncError

HASH_KEY = "_hash"
# Task-level fields Label Studio's import accepts next to "data"; anything else in a task file is dropped.
TASK_FIELDS = ("data", "predictions", "annotations", "meta")


def task_hash(data: dict) -> str:
    """A stable fingerprint of a task's data (key order and an existing hash field do not matter)."""
    payload = {k: v for k, v in data.items() if k != HASH_KEY}
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def _as_task(item: Any, where: str) -> dict:
    if not isinstance(item, dict):
        raise SyncError(f"{where}: expected a JSON object (a task or its data), got {type(item).__name__}")
    if isinstance(item.get("data"), dict):
        return {k: item[k] for k in TASK_FIELDS if k in item}
    return {"data": item}


def read_tasks(path: str | os.PathLike, text_key: str = "text") -> list[dict]:
    """Tasks ({"data": {...}}) from a .json (a list of tasks or of data dicts), .jsonl or .csv/.tsv file.

    Every task must have a non-empty `text_key` field; each gets its data hash, and repeats in the file are
    kept once.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise SyncError(f"cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise SyncError(f"{path} is not UTF-8 text") from None

    tasks: list[dict] = []
    if suffix == ".json":
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SyncError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            raise SyncError(f"{path}: expected a list of tasks")
        tasks = [_as_task(item, f"{path} item {n}") for n, item in enumerate(items, 1)]
    elif suffix in (".jsonl", ".ndjson"):
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise SyncError(f"{path}:{n}: not valid JSON ({e.msg})") from None
            tasks.append(_as_task(item, f"{path}:{n}"))
    elif suffix in (".csv", ".tsv"):
        # newline="" keeps line breaks inside quoted fields (multi-line reviews) as they are.
        reader = csv.DictReader(io.StringIO(raw, newline=""), delimiter="\t" if suffix == ".tsv" else ",")
        columns = reader.fieldnames or []
        if text_key not in columns:
            listed = ", ".join(columns) or "none"
            raise SyncError(f"{path}: no {text_key!r} column (columns: {listed}); name the text column with --text-key")
        for row in reader:
            tasks.append({"data": {k: v for k, v in row.items() if k is not None}})
    else:
        raise SyncError(f"{path}: unknown file type {suffix or '(none)'}; use .json, .jsonl or .csv")

    unique: dict[str, dict] = {}
    for n, task in enumerate(tasks, 1):
        value = task["data"].get(text_key)
        if not isinstance(value, str) or not value.strip():
            raise SyncError(f"{path}: task {n} has no text in {text_key!r} (use --text-key to name the field)")
        digest = task["data"].get(HASH_KEY) or task_hash(task["data"])
        task["data"] = {**task["data"], HASH_KEY: digest}
        unique.setdefault(digest, task)
    return list(unique.values())


def default_text_key(label_config: str) -> str:
    """The task field the config's Text tag reads, so imported files match the project without a flag."""
    try:
        return schemas.parse(label_config).data_key
    except schemas.SchemaError:
        return "text"
