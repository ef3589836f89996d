"""Synthetic examples written by the local Qwen model: a seeded plan of prompts, batched sampling, a resumable JSONL.

Four ways to write an example (each candidate records which, and everything needed to write it again):

- conditional: a text for a given label, from the guidelines' definition of that label and a few real examples of it
  shown as earlier chat turns (the model imitates their form and length);
- paraphrase: a real example said again in other words, keeping its label;
- style: a real example rewritten formal, casual, shorter, longer or sarcastic, keeping its label;
- minority: conditional generation aimed at the labels that are rarest in the real (annotated) data, each label
  getting a share of the budget proportional to how far it falls behind the most frequent one.

The plan is fixed by the seed before anything is generated: which mode, label, real examples and style each candidate
gets. Candidates are generated in batches of one label (similar lengths, so little padding); batch b is sampled with
torch seed `seed * 10_000 + b`, recorded with each item, so a batch comes out the same when run again. Every batch is
appended to the JSONL as soon as it is done; a second run with the same settings skips the batches already there,
and one with other settings refuses to mix its items into the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from backend import corpus
from backend.errors import LabelloopError
from backend.guidelines import Guidelines
from backend.labelstudio import schema as schemas
from backend.labelstudio.records import is_synthetic
from backend.labelstudio.task_files import HASH_KEY, task_hash
from backend.paths import DEMO_CONFIG

MODES = ("conditional", "paraphrase", "style", "minority")
DEFAULT_MIX = {"conditional": 20, "paraphrase": 20, "style": 20, "minority": 40}
# How each style is asked for; {label} is the label the rewrite must keep.
STYLES = {
    "formal": "in a formal register, like a newspaper critic",
    "casual": "in a casual register, like a friend chatting",
    "short": "much shorter, in one brief sentence",
    "long": "longer, in two or three sentences with more detail",
    "sarcastic": "sarcastically, so that the words say the opposite of what the writer means",
}
# A sarcastic text carries an opinion by definition, so it cannot stay a statement of facts.
NO_SARCASM = {"Neutral"}
SHOTS = 3
GENERATOR = "labelloop.synthetic/1"  # bump when prompts or cleaning change what the same seed writes
MIN_BUDGET = 16
PREDICTION_VERSION = "synthetic-intended"  # model_version of the intended-label predictions imported to Label Studio


class SyntheticError(LabelloopError, ValueError):
    """Bad input to the synthetic pipeline (a file, a mix, a label); the message is one line saying what to fix."""

    http_status = 400


@dataclass(frozen=True)
class Sampling:
    """Generation parameters, recorded with every item."""

    temperature: float = 0.9
    top_p: float = 0.95
    max_new_tokens: int = 160
    batch_size: int = 8

    def check(self) -> None:
        if not 0 < self.temperature <= 2:
            raise SyntheticError(f"temperature must be in (0, 2], got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise SyntheticError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < MIN_BUDGET:
            raise SyntheticError(f"max_new_tokens must be at least {MIN_BUDGET}, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise SyntheticError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass
class Job:
    """One candidate to write: everything the prompt is made of."""

    index: int
    mode: str
    label: str
    style: str | None = None
    source: str | None = None  # the real text paraphrased or restyled
    shots: list[str] = field(default_factory=list)  # real texts of `label` shown as examples
    budget: int = 0  # max_new_tokens for this job


# ---------------------------------------------------------------- inputs


def parse_mix(spec: str) -> dict[str, int]:
    """ "conditional=20,minority=40" → {"conditional": 20, "minority": 40}; modes left out get none."""
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, number = part.partition("=")
        name = name.strip()
        if not sep or name not in MODES:
            raise SyntheticError(f"bad mix entry {part!r}: expected MODE=COUNT with MODE one of {', '.join(MODES)}")
        try:
            mix[name] = int(number)
        except ValueError:
            raise SyntheticError(f"bad count in {part!r}: {number.strip()!r} is not a whole number") from None
        if mix[name] < 0:
            raise SyntheticError(f"bad count in {part!r}: must be 0 or more")
    if sum(mix.values()) < 1:
        raise SyntheticError(f"the mix {spec!r} asks for no candidates")
    return mix


def load_real(path: str | os.PathLike, schema: schemas.Schema | None = None) -> pd.DataFrame:
    """Real labeled examples as columns text, label: a CSV or JSONL/JSON list with text and label, or a Label Studio
    JSON export (each task's label resolved as training does; gold and synthetic tasks left out)."""
    from backend.labelstudio import tasks as ls_tasks
    from backend.quality import gold

    schema = schema or schemas.parse(_default_config())
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".jsonl", ".ndjson", ".json"):
        raise SyntheticError(f"{path}: unknown file type {suffix or '(none)'}; use .csv, .jsonl or .json")
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise SyntheticError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SyntheticError(f"{path} is not UTF-8 text") from None
    if suffix in (".csv", ".tsv"):
        import io

        try:
            df = pd.read_csv(io.StringIO(raw), sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise SyntheticError(f"{path}: not a readable CSV file ({str(e).splitlines()[0]})") from None
        rows = df.to_dict("records")
    elif suffix in (".jsonl", ".ndjson"):
        rows = [_json_line(line, path, n) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    else:
        try:
            rows = json.loads(raw)
        except json.JSONDecodeError as e:
            raise SyntheticError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise SyntheticError(f"{path}: expected a list of objects")
        if rows and all(isinstance(r.get("data"), dict) for r in rows):
            rows = _from_export(rows, schema, gold.default_gold(), ls_tasks)
    out = []
    for n, row in enumerate(rows, 1):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not text.strip():
            raise SyntheticError(f"{path}: row {n} has no text (columns text and label are needed)")
        if label not in schema.labels:
            raise SyntheticError(f"{path}: row {n} has label {label!r}; the labels are {', '.join(schema.labels)}")
        out.append({"text": text.strip(), "label": label})
    if not out:
        raise SyntheticError(f"{path} holds no labeled examples")
    return pd.DataFrame(out).drop_duplicates("text").reset_index(drop=True)


def _json_line(line: str, path: Path, n: int) -> dict:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as e:
        raise SyntheticError(f"{path}:{n}: not valid JSON ({e.msg})") from None
    if not isinstance(item, dict):
        raise SyntheticError(f"{path}:{n}: expected a JSON object")
    return item


def _from_export(tasks: list[dict], schema: schemas.Schema, gold_set: Any, ls_tasks: Any) -> list[dict]:
    rows = []
    for task in tasks:
        data = task["data"]
        text = schema.text_of(data)
        if is_synthetic(task) or gold_set.is_gold(text) or not isinstance(text, str):
            continue
        live = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        label = ls_tasks.resolve(live, schema)
        if label:
            rows.append({"text": text, "label": label})
    return rows


def label_studio_tasks(items: Sequence[dict], schema: schemas.Schema) -> list[dict]:
    """Label Studio tasks for the accepted items: the text, data.synthetic = true (which training, agreement and gold
    statistics skip), data.provenance (model, mode, prompt, sampling parameters and seed, intended label, guidelines
    version, filter scores), and the intended label as a prediction, so annotators verify instead of writing."""
    tasks = []
    for item in items:
        if item.get("filter", {}).get("status") != "accepted":
            continue
        label = item["intended_label"]
        if label not in schema.labels:
            raise SyntheticError(
                f"{item.get('id')}: intended label {label!r} is not one of the project's labels "
                f"({', '.join(schema.labels)})"
            )
        scores = item["filter"].get("scores", {})
        kept = ("llm_p_intended", "classifier_p_intended", "rouge_l_max", "cosine_max")
        provenance = {
            **item.get("provenance", {}),
            "id": item.get("id"),
            "intended_label": label,
            "filter": {k: scores[k] for k in kept if k in scores},
        }
        data = {schema.data_key: item["text"], "synthetic": True, "provenance": provenance}
        data[HASH_KEY] = task_hash(data)
        prediction: dict[str, Any] = {"model_version": PREDICTION_VERSION, "result": [schema.result(label)]}
        if "llm_p_intended" in scores:
            prediction["score"] = scores["llm_p_intended"]
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def corpus_sample(size: int, seed: int = 0) -> pd.DataFrame:
    """A stratified sample of the corpus disjoint from the evaluation's test and calibration splits."""
    from backend.bench import evaluation  # imports torch through the predictor: only when needed

    if size < 1:
        raise SyntheticError(f"the sample size must be at least 1, got {size}")
    test, calibration = evaluation.splits()
    df = corpus.load()
    rest = df[~df["text"].isin(set(test["text"]) | set(calibration["text"]))]
    return corpus.stratified_split(rest, [size], seed=seed)[0][["text", "label"]]


def label_definitions(guidelines: Guidelines | None, labels: Sequence[str]) -> dict[str, str]:
    """Each label's one-line definition from the guidelines' Labels section ("- **Positive**: ..."), else ""."""
    section = (guidelines.prompt_sections.get("Labels", "") if guidelines else "") or ""
    found = dict(re.findall(r"^\s*-\s*\*\*(.+?)\*\*\s*:\s*(.+?)\s*$", section, re.M))
    return {label: found.get(label, "") for label in labels}


def minority_shares(counts: dict[str, int], labels: Sequence[str], n: int) -> dict[str, int]:
    """How many of n minority candidates each label gets: in proportion to its deficit against the most frequent
    label (largest remainders), so the real plus synthetic counts move towards balance; equal shares if balanced."""
    have = np.array([counts.get(label, 0) for label in labels], dtype=float)
    deficit = have.max() - have
    if deficit.sum() == 0:
        deficit = np.ones(len(labels))
    exact = n * deficit / deficit.sum()
    out = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - out), kind="stable")[: n - out.sum()]:
        out[i] += 1
    return {label: int(k) for label, k in zip(labels, out) if k}


# ---------------------------------------------------------------- the plan


def plan(
    real: pd.DataFrame,
    labels: Sequence[str],
    mix: dict[str, int],
    seed: int,
    sampling: Sampling,
    token_count: Callable[[str], int],
) -> list[Job]:
    """Every candidate's mode, label, real examples and style, fixed by `seed` before anything is generated."""
    rng = np.random.default_rng(seed)
    # Real texts longer than the budget allows cannot be imitated or rewritten within it: they are left out of
    # prompts (in this corpus that drops the longest plot synopses).
    fit = {label: [] for label in labels}
    for text, label in zip(real["text"], real["label"]):
        if token_count(text) <= 0.75 * sampling.max_new_tokens:
            fit[label].append(text)
    budgets = {}
    for label in labels:
        lengths = [token_count(t) for t in fit[label]] or [sampling.max_new_tokens // 2]
        budgets[label] = int(min(sampling.max_new_tokens, max(MIN_BUDGET, 2 * np.percentile(lengths, 90))))
    with_examples = [label for label in labels if fit[label]]
    counts = real["label"].value_counts().to_dict()

    def pick(label: str, k: int) -> list[str]:
        pool = fit[label]
        return [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)] if pool else []

    jobs: list[Job] = []
    for mode in MODES:
        n = mix.get(mode, 0)
        if not n:
            continue
        if mode == "minority":
            targets = [label for label, k in minority_shares(counts, labels, n).items() for _ in range(k)]
        elif mode == "conditional":
            targets = [labels[i % len(labels)] for i in range(n)]
        else:
            if not with_examples:
                raise SyntheticError(f"{mode} needs real examples short enough to rewrite; the real data has none")
            targets = [with_examples[i % len(with_examples)] for i in range(n)]
        for i, label in enumerate(targets):
            job = Job(index=len(jobs), mode=mode, label=label, budget=budgets[label])
            if mode in ("conditional", "minority"):
                job.shots = pick(label, SHOTS)
            else:
                job.source = pick(label, 1)[0]
            if mode == "style":
                styles = [s for s in STYLES if not (s == "sarcastic" and label in NO_SARCASM)]
                job.style = styles[i // len(with_examples) % len(styles)]
            jobs.append(job)
    return jobs


def batches(jobs: Sequence[Job], batch_size: int) -> list[list[Job]]:
    """Jobs in batches of one label each (similar lengths pad little), the labels' batches taken in turn so a time
    limit cuts every label short rather than leaving one out."""
    by_label: dict[str, list[Job]] = {}
    for job in jobs:
        by_label.setdefault(job.label, []).append(job)
    queues = [[group[i : i + batch_size] for i in range(0, len(group), batch_size)] for group in by_label.values()]
    out = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


# ---------------------------------------------------------------- prompts


def system_prompt(guidelines: Guidelines | None, labels: Sequence[str]) -> str:
    definitions = label_definitions(guidelines, labels)
    task = guidelines.task if guidelines else "Classify the sentiment of a text about a movie."
    lines = [
        "You write realistic texts about movies for a dataset that annotators label by these guidelines.",
        f"The labeling task: {task}",
        "The labels:",
        *(f"- {label}: {definitions[label] or label}" for label in labels),
        "Reply with the text only: no title, no label, no quotation marks, no explanation.",
    ]
    return "\n".join(lines)


def messages(job: Job, system: str, definitions: dict[str, str]) -> list[dict[str, str]]:
    """The chat for one job; real examples go in as earlier turns, the form a small model imitates best."""
    definition = (definitions.get(job.label) or job.label).rstrip(".")
    turns = [{"role": "system", "content": system}]
    if job.mode in ("conditional", "minority"):
        ask = f"Write one new {job.label} text ({definition}), about a different movie than before."
        for shot in job.shots:
            turns += [{"role": "user", "content": ask}, {"role": "assistant", "content": shot}]
        turns.append({"role": "user", "content": ask})
    elif job.mode == "paraphrase":
        turns.append(
            {
                "role": "user",
                "content": (
                    f"Paraphrase this {job.label} text: keep what it says about the movie and its verdict, change the words "
                    f"and the sentence structure.\n\nText: {job.source}"
                ),
            }
        )
    else:
        turns.append(
            {
                "role": "user",
                "content": (
                    f"Rewrite this {job.label} text {STYLES[job.style]}. The label must stay {job.label} "
                    f"({definition}).\n\nText: {job.source}"
                ),
            }
        )
    return turns


_INTRO = re.compile(r"^[^\n]{0,80}:\s*\n")  # "Here is the paraphrased text:" on a line of its own
_FIELD = re.compile(r"^(?:text|review|paraphrase|rewritten text|new text|synopsis)\s*:\s*", re.I)
_QUOTES = {'"': '"', "“": "”", "'": "'"}


def clean(raw: str) -> str:
    """The text without the wrappers small models add: an introducing line, a "Text:" field name, enclosing quotes.
    Anything else odd is left for the format filter to reject with a reason."""
    text = raw.strip()
    text = _INTRO.sub("", text, count=1).strip()
    text = _FIELD.sub("", text, count=1).strip()
    if len(text) > 1 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip()
    return text


# ---------------------------------------------------------------- generation


def _fingerprint(**parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def text_id(text: str) -> str:
    """A short, stable name of a real text for provenance (its SHA-256 prefix), without repeating the text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def read_candidates(path: str | os.PathLike) -> list[dict]:
    """The items of a generation (or filter) JSONL; a final line cut short by a crash is ignored."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise SyntheticError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise SyntheticError(f"{path} is not UTF-8 text") from None
    items = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            if n == len(lines):  # half a line from an interrupted write
                break
            raise SyntheticError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str) or "intended_label" not in item:
            raise SyntheticError(f"{path}:{n}: not a synthetic item (needs text and intended_label)")
        items.append(item)
    return items


@dataclass
class GenerationResult:
    written: int  # items generated by this run
    total: int  # items in the file now
    planned: int
    stopped_by_time: bool
    seconds: float


def generate(
    predictor: Any,
    real: pd.DataFrame,
    out: str | os.PathLike,
    mix: dict[str, int] = DEFAULT_MIX,
    *,
    seed: int = 0,
    sampling: Sampling = Sampling(),
    max_minutes: float | None = None,
    labels: Sequence[str] | None = None,
    progress: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> GenerationResult:
    """Write the planned candidates to `out` (JSONL, appended batch by batch), skipping batches already there.

    Stops before a batch that would start after `max_minutes`; running the same call again continues.
    """
    sampling.check()
    labels = tuple(labels or schemas.parse(_default_config()).labels)
    unknown = sorted(set(real["label"]) - set(labels))
    if unknown:
        raise SyntheticError(f"the real data has labels {unknown} that the label config does not offer")
    scorer, source, guidelines = predictor.scorer, predictor.source, predictor.guidelines
    jobs = plan(real, labels, mix, seed, sampling, lambda t: len(scorer.encode(t)))
    pairs = "\n".join(sorted(f"{t}\t{lab}" for t, lab in zip(real["text"], real["label"])))
    run = _fingerprint(
        generator=GENERATOR,
        model=source.identity,
        seed=seed,
        mix=mix,
        sampling=asdict(sampling),
        labels=labels,
        guidelines=guidelines.sha256 if guidelines else None,
        real=hashlib.sha256(pairs.encode()).hexdigest(),
    )
    out = Path(out)
    existing = read_candidates(out)
    foreign = [item for item in existing if item.get("provenance", {}).get("run") != run]
    if foreign:
        raise SyntheticError(
            f"{out} holds {len(foreign)} items from a run with other settings (model, seed, mix, sampling, real data "
            "or guidelines); give a new --out, or the same settings to continue it"
        )
    if existing:
        _drop_partial_line(out)
    done = {item["job"] for item in existing}

    system = system_prompt(guidelines, labels)
    definitions = label_definitions(guidelines, labels)
    counts = real["label"].value_counts().to_dict()
    common = {
        "generator": GENERATOR,
        "model": source.name,
        "model_identity": source.identity,
        "guidelines_version": guidelines.version if guidelines else None,
        "guidelines_sha256": guidelines.sha256 if guidelines else None,
        "run": run,
    }

    started = clock()
    written, stopped = 0, False
    out.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(jobs), initial=len(done), unit="text", desc="generate", disable=not progress) as bar:
        for number, batch in enumerate(batches(jobs, sampling.batch_size)):
            todo = [job for job in batch if job.index not in done]
            if not todo:
                continue
            if max_minutes is not None and clock() - started > max_minutes * 60:
                stopped = True
                break
            batch_seed = seed * 10_000 + number
            chats = [messages(job, system, definitions) for job in batch]
            outputs = _sample(scorer, chats, [job.budget for job in batch], sampling, batch_seed)
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            lines = []
            for job, chat, (raw, finished) in zip(batch, chats, outputs):
                if job.index in done:
                    continue
                provenance = {
                    **common,
                    "mode": job.mode,
                    "style": job.style,
                    "intended_label": job.label,
                    "prompt": chat,
                    "sources": [text_id(t) for t in ([job.source] if job.source else job.shots)],
                    "params": {
                        "do_sample": True,
                        "temperature": sampling.temperature,
                        "top_p": sampling.top_p,
                        "max_new_tokens": job.budget,
                        "batch_size": sampling.batch_size,
                        "seed": batch_seed,
                        "batch": number,
                        "plan_seed": seed,
                    },
                    "created_at": now,
                }
                if job.mode == "minority":
                    provenance["real_label_counts"] = {label: int(counts.get(label, 0)) for label in labels}
                item = {
                    "id": f"syn-{run[:8]}-{job.index:05d}",
                    "job": job.index,
                    "text": clean(raw),
                    "intended_label": job.label,
                    "mode": job.mode,
                    "raw": raw,
                    "finished": finished,
                    "provenance": provenance,
                }
                lines.append(json.dumps(item, ensure_ascii=False) + "\n")
            with out.open("a", encoding="utf-8") as f:
                f.write("".join(lines))  # one write per batch: an interruption loses at most this batch
                f.flush()
                os.fsync(f.fileno())
            written += len(lines)
            done.update(job.index for job in todo)
            bar.update(len(todo))
    return GenerationResult(written, len(done), len(jobs), stopped, clock() - started)


def _sample(
    scorer: Any, chats: list[list[dict]], budgets: list[int], sampling: Sampling, seed: int
) -> list[tuple[str, bool]]:
    """(text, finished) for each chat, sampled together in one batch; finished is False when a text used up its
    budget without ending."""
    import torch

    tokenizer = scorer.tokenizer
    stops = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]
    stops = [i for i in stops if isinstance(i, int)]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[-1]
    rendered = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
    prompts = [scorer.encode(r) for r in rendered]
    width = max(map(len, prompts))
    # Left padding: every row's last prompt token sits at the same column, where generation starts.
    device = scorer.model.device
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    torch.manual_seed(seed)
    with torch.inference_mode():
        output = scorer.model.generate(
            ids,
            attention_mask=mask,
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0,
            max_new_tokens=max(budgets),
            pad_token_id=pad,
            eos_token_id=stops,
        )
    out = []
    for row, budget in enumerate(budgets):
        new = output[row, width:].tolist()
        ends = [k for k, t in enumerate(new) if t in stops]
        finished = bool(ends) and ends[0] < budget
        out.append((tokenizer.decode(new[: ends[0]] if finished else new[:budget], skip_special_tokens=True), finished))
    return out


def _drop_partial_line(path: Path) -> None:
    """Cut a trailing line that lacks its newline (a write interrupted mid-batch), so appends start clean."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def _default_config() -> str:
    return DEMO_CONFIG.read_text(encoding="utf-8")
