"""Gold tasks: items with known labels, hidden in the annotation stream to measure each annotator.

The gold file (default guidelines/gold/sentiment.jsonl) holds one item per line, {"text", "label", "note"}; a JSON
list or a CSV file with text,label[,note] columns works too. For a multi-label question the label is the set of
labels that apply: a JSON list (possibly empty), or in CSV the labels separated by commas ("none" for the empty set). `load_gold` validates it (known labels, non-empty and
unique texts) and names the offending line of any mistake.

`inject_gold` mixes gold tasks into a list of tasks: K gold per block of N tasks as the annotators see them (default
5 per 50), at seeded random positions inside each block, cycling through the gold set. A gold task is just
{"data": {text_key: text}}: no label, no flag, no id, so nothing in Label Studio tells it apart from real work and
the answers never leave the gold file. Gold is recognised afterwards by `text_hash`, a SHA-256 of the normalised
text (Unicode NFKC, case-folded, whitespace collapsed), so small re-encodings of the text in an export still match.

Gold tasks do not feed training. They are the yardstick the annotators (backend/quality/drift.py) and the model are measured
against; fitting the calibration, adding few-shot examples or fine-tuning on them would make the model agree with
gold by construction and hide its real error rate, and a gold text that becomes a prompt example would no longer
test anyone. Training code filters its data with `exclude_gold(...)` (or `is_gold(text)` per row). For the same
reason the gold texts are written fresh: none is a corpus row or one of the guidelines' examples (the tests check).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from backend.corpus import LABELS
from backend.errors import LabelloopError
from backend.paths import DEMO_GOLD

DEFAULT_GOLD = DEMO_GOLD
DEFAULT_RATE = (5, 50)
DEFAULT_TEXT_KEY = "text"  # the $text the labeling config reads


class GoldError(LabelloopError, ValueError):
    """A problem with the user's gold or task file (missing, malformed, invalid entry): shown as one line."""

    http_status = 400


@dataclass(frozen=True)
class GoldItem:
    text: str
    label: str
    note: str
    line: int  # line in a JSONL/CSV file, entry number in a JSON list

    @property
    def key(self) -> str:
        return text_hash(self.text)


def normalise(text: str) -> str:
    """The form gold is matched on: NFKC, case-folded, runs of whitespace as one space, trimmed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> str:
    """Stable identity of a text (hex SHA-256 of its normalised form); the same across processes and machines."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


class GoldSet:
    """The validated gold items, looked up by text hash."""

    def __init__(self, items: Sequence[GoldItem], source: str = ""):
        self.items = list(items)
        self.source = source
        self._by_key = {item.key: item for item in self.items}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    @property
    def labels(self) -> list[str]:
        return sorted({item.label for item in self.items})

    def lookup(self, text: str | None) -> GoldItem | None:
        return None if not isinstance(text, str) else self._by_key.get(text_hash(text))

    def is_gold(self, text: str | None) -> bool:
        return self.lookup(text) is not None

    def label_for(self, text: str | None) -> str | None:
        item = self.lookup(text)
        return item.label if item else None


# ---------------------------------------------------------------------------------------------------------------
# Loading


NO_LABEL = "(none)"


def set_label(labels: Sequence[str]) -> str:
    """A multi-label answer as one comparable, readable string: the labels sorted, "(none)" for the empty set."""
    return " + ".join(sorted(set(labels))) or NO_LABEL


def _set_members(label: Any) -> list[str] | None:
    if isinstance(label, list) and all(isinstance(x, str) for x in label):
        return [x.strip() for x in label if x.strip()]
    if isinstance(label, str):
        return [] if label.strip().lower() in ("none", NO_LABEL) else [x.strip() for x in label.split(",") if x.strip()]
    return None


def load_gold(
    path: str | Path = DEFAULT_GOLD, labels: Sequence[str] | None = LABELS, multiple: bool = False
) -> GoldSet:
    """Read and validate a gold file: CSV (*.csv), JSONL (*.jsonl, or any file not starting with "[") or a JSON list.

    Every entry needs a non-empty "text" and a "label" among `labels` (any label when None); "note" is optional. Texts must be unique
    after normalising (they are the gold's identity). Raises GoldError naming the file and line of a bad entry.
    """
    path = Path(path)
    text = _read_text(path)
    rows = _csv_rows(text, path) if path.suffix.lower() == ".csv" else _json_rows(text, path)

    allowed = None if labels is None else list(labels)
    items: list[GoldItem] = []
    seen: dict[str, str] = {}
    for where, line, row in rows:
        if not isinstance(row, dict):
            raise GoldError(f"{path} {where}: expected an object with text and label, got {type(row).__name__}")
        value, label, note = row.get("text"), row.get("label"), row.get("note")
        if not isinstance(value, str) or not value.strip():
            raise GoldError(f"{path} {where}: empty or missing text")
        if multiple:
            members = _set_members(label)
            if members is None:
                raise GoldError(f'{path} {where}: a multi-label gold label is a list of labels (or "none")')
            unknown = [m for m in members if m not in allowed] if allowed is not None else []
            if allowed is not None and unknown:
                raise GoldError(f"{path} {where}: unknown label {unknown[0]!r} (allowed: {', '.join(allowed)})")
            label = set_label(members)
        elif not isinstance(label, str) or not label.strip():
            raise GoldError(f"{path} {where}: missing label")
        label = label.strip()
        if not multiple and allowed is not None and label not in allowed:
            raise GoldError(f"{path} {where}: unknown label {label!r} (allowed: {', '.join(allowed)})")
        if note is not None and not isinstance(note, str):
            raise GoldError(f"{path} {where}: note must be text")
        item = GoldItem(text=value.strip(), label=label, note=(note or "").strip(), line=line)
        if item.key in seen:
            raise GoldError(
                f"{path} {where}: duplicate text (same as {seen[item.key]} once case and spaces are normalised)"
            )
        seen[item.key] = where
        items.append(item)
    if not items:
        raise GoldError(f"{path} holds no gold items")
    return GoldSet(items, source=str(path))


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise GoldError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise GoldError(f"{path} is not UTF-8 text") from None


def _json_rows(text: str, path: Path) -> list[tuple[str, int, Any]]:
    """A .jsonl/.ndjson file is read line by line; any other file as a JSON list when it starts with "[", else JSONL."""
    if path.suffix.lower() not in (".jsonl", ".ndjson") and text.lstrip().startswith("["):
        return _json_list_rows(text, path)
    return _jsonl_rows(text, path)


def _jsonl_rows(text: str, path: Path) -> list[tuple[str, int, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"line {number}", number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise GoldError(f"{path} line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    return rows


def _json_list_rows(text: str, path: Path) -> list[tuple[str, int, Any]]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoldError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(payload, list):
        raise GoldError(f"{path}: expected a JSON list of {{text, label}} objects")
    # json.loads keeps no positions, so a list entry is named by its 1-based index instead.
    return [(f"entry {i}", i, row) for i, row in enumerate(payload, start=1)]


def _csv_rows(text: str, path: Path) -> list[tuple[str, int, Any]]:
    csv.field_size_limit(2**31 - 1)
    reader = csv.DictReader(io.StringIO(text))
    try:
        columns = reader.fieldnames or []
        missing = [c for c in ("text", "label") if c not in columns]
        if missing:
            raise GoldError(f"{path}: CSV needs columns text,label (missing {', '.join(missing)})")
        rows = []
        for row in reader:
            # line_num is where the row ends, so quoted newlines inside a text still name the right line.
            rows.append((f"line {reader.line_num}", reader.line_num, {k: v for k, v in row.items() if k}))
    except csv.Error as exc:
        raise GoldError(f"{path} is not a readable CSV file ({exc})") from None
    return rows


@lru_cache(maxsize=1)
def default_gold() -> GoldSet:
    """The demo's gold set (guidelines/gold/sentiment.jsonl), loaded once."""
    return load_gold(DEFAULT_GOLD)


@lru_cache(maxsize=8)
def project_gold(path: Path | None) -> GoldSet:
    """The gold set that training and finishing leave out (the GOLD_FILE setting), loaded once; empty for None.
    Only its texts matter there, so its labels are not checked against the project's config."""
    return GoldSet([], source="none") if path is None else load_gold(path, labels=None)


# ---------------------------------------------------------------------------------------------------------------
# Recognising gold


def _text_of(thing: Any, text_key: str = DEFAULT_TEXT_KEY) -> str | None:
    """The text of an export Item, a task dict ({"data": {...}} or flat), or a plain string."""
    if isinstance(thing, str):
        return thing
    if isinstance(thing, dict):
        data = thing.get("data")
        value = (data if isinstance(data, dict) else thing).get(text_key)
        return value if isinstance(value, str) else None
    value = getattr(thing, "text", None)
    return value if isinstance(value, str) else None


def is_gold(text: Any, gold: GoldSet | None = None) -> bool:
    """Whether a text (or an Item / task dict holding one) is a gold item; default gold: the project's file."""
    return (gold or default_gold()).is_gold(_text_of(text))


def gold_label(item: Any, gold: GoldSet | None = None) -> str | None:
    """The gold label of an export Item (or task dict, or text), None if it is not gold."""
    return (gold or default_gold()).label_for(_text_of(item))


def exclude_gold(items: Any, gold: GoldSet | None = None) -> Any:
    """The items that are not gold, for training code.

    Takes a pandas DataFrame with a "text" column (returns a DataFrame), or an iterable of export Items, task dicts
    or strings (returns a list); order is kept.
    """
    gold = gold or default_gold()
    if hasattr(items, "columns") and "text" in items.columns:
        return items[~items["text"].map(gold.is_gold).astype(bool)]
    return [item for item in items if not gold.is_gold(_text_of(item))]


# ---------------------------------------------------------------------------------------------------------------
# Injecting gold into the annotation stream


def parse_rate(rate: str | tuple[int, int]) -> tuple[int, int]:
    """ "5/50" → (5, 50): K gold in every block of N tasks; needs 1 <= K < N so each block has room for real work."""
    if isinstance(rate, tuple):
        gold_per_block, block = rate
    else:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(rate))
        if not match:
            raise GoldError(f"bad rate {rate!r}: expected K/N such as 5/50 (K gold tasks in every block of N)")
        gold_per_block, block = int(match.group(1)), int(match.group(2))
    if not 1 <= gold_per_block < block:
        raise GoldError(f"bad rate {gold_per_block}/{block}: need 1 <= K < N (K gold among N tasks), e.g. 5/50")
    return gold_per_block, block


def inject_gold(
    tasks: Sequence[dict],
    gold: GoldSet,
    rate: str | tuple[int, int] = DEFAULT_RATE,
    seed: int = 0,
    text_key: str = DEFAULT_TEXT_KEY,
) -> list[dict]:
    """The tasks, in their order, with gold tasks mixed in: K gold at random positions in every block of N.

    Each full block holds N - K original tasks and K gold tasks. A final, shorter run of r original tasks gets
    round(K * r / (N - K)) gold tasks, so the rate holds there too. Positions come from `seed` (the same seed gives
    the same stream) and differ from block to block. Gold is taken in a seeded shuffled order and cycled, so every
    gold item is used once before any repeats. A gold task is {"data": {text_key: text}} and nothing else.
    """
    gold_per_block, block = parse_rate(rate)
    if not len(gold):
        raise GoldError("the gold set is empty")
    for number, task in enumerate(tasks, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise GoldError(f'task {number} has no data object; expected {{"data": {{"{text_key}": ...}}}}')
    rng = random.Random(seed)
    order = list(gold)
    rng.shuffle(order)

    real_per_block = block - gold_per_block
    out: list[dict] = []
    used = 0
    for start in range(0, len(tasks), real_per_block):
        chunk = list(tasks[start : start + real_per_block])
        n_gold = gold_per_block if len(chunk) == real_per_block else round(gold_per_block * len(chunk) / real_per_block)
        size = len(chunk) + n_gold
        gold_slots = set(rng.sample(range(size), n_gold))
        real = iter(chunk)
        for slot in range(size):
            if slot in gold_slots:
                out.append({"data": {text_key: order[used % len(order)].text}})
                used += 1
            else:
                out.append(next(real))
    return out


def extra_data_fields(tasks: Sequence[dict], text_key: str = DEFAULT_TEXT_KEY) -> list[str]:
    """Data fields of the tasks besides the text: gold tasks lack them, which the Data Manager would show."""
    fields: dict[str, None] = {}
    for task in tasks:
        data = task.get("data") if isinstance(task, dict) else None
        for key in data or {}:
            if key != text_key:
                fields[key] = None
    return list(fields)
