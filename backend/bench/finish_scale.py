"""`labelloop finish` on a project of a team's size against a real Label Studio, step by step, with a kill -9 in
the middle of `--apply` (labelloop bench-finish).

A project with the demo's sentiment config gets `tasks` corpus reviews in bulk, the first `labeled` with a person's
label (the corpus's), imported with them. Then the command runs as a user runs it, in its own process:

1. plan: `labelloop finish --apply` draws the audit and keeps it as the "Finish audit" tab;
2. audit: people (this benchmark, with the corpus's labels, 4 at once) label the tab's tasks;
3. apply, killed: `labelloop finish --apply` is killed with SIGKILL once its "annotate" progress passes `kill_at`;
4. apply again: the same command runs to the end; the check: the file and Label Studio agree;
5. undo: `labelloop finish --undo` (the model's labels and the audit's tab go); the check: no model label is left,
   the people's are all there;
6. plan and audit again (a new audit, drawn from every label), then apply uninterrupted: the figure the target is
   about; checked again.

Every step's seconds are wall time of the command (its model load, its reading of Label Studio, its scoring from
the per-text cache the plan filled, its fits and its writes). The model is the tests' tiny random Qwen2 saved as a
directory (LLM_MODEL points at it: the command loads it as any model), unless `real_model`. The tiny model's
answers are noise, so with it people agree with its guesses on the audit (else a low target passes or fails by the
draw) and it labels most of the pool: what times the writes at scale. With the packaged model people answer with
the corpus's labels.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

from backend.bench.rescore import BenchError, corpus_texts
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES, ROOT

IMPORT_CHUNK = 1000
PROGRESS = re.compile(r"annotate:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


def _labels(n: int) -> tuple[list[str], list[str]]:
    from backend import corpus

    texts, df = corpus_texts(n), corpus.load()
    truth = dict(zip(df["text"], df["label"]))
    return texts, [truth[t] for t in texts]


@lru_cache(maxsize=1)
def _config() -> Any:
    from backend.labelstudio import schema as schemas

    return schemas.parse_config(DEMO_CONFIG.read_text())


def _result(label: str) -> list[dict]:
    """A person's answer on the demo's config, as the editor writes it."""
    return [_config().primary.result(label)]


def import_project(client: Any, texts: list[str], labels: list[str], labeled: int, progress: bool) -> int:
    """A project with the texts as tasks, the first `labeled` holding a person's label; its id."""
    from tqdm.auto import tqdm

    from backend.labelstudio import sync

    title = f"finish bench {time.strftime('%m-%d %H:%M:%S')}, {len(texts)} tasks"[:50]
    project = sync.ensure_project(client, title, DEMO_CONFIG, DEMO_GUIDELINES).id
    rows = [
        {"data": {"text": t}, **({"annotations": [{"result": _result(y)}]} if i < labeled else {})}
        for i, (t, y) in enumerate(zip(texts, labels))
    ]
    with tqdm(total=len(rows), desc="import", unit="task", disable=not progress, leave=False) as bar:
        for start in range(0, len(rows), IMPORT_CHUNK):
            client.projects.import_tasks(id=project, request=rows[start : start + IMPORT_CHUNK])
            bar.update(min(IMPORT_CHUNK, len(rows) - start))
    return project


def command(args: list[str], env: dict[str, str], kill_at: float | None = None) -> dict:
    """`labelloop finish ARGS` in its own process; with `kill_at`, killed with SIGKILL once its annotate progress
    passes that share. Its seconds, exit status, whether it was killed, and its last lines."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "finish", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = threading.Event()
    seen: list[str] = []

    def watch() -> None:
        assert proc.stderr is not None
        buffer = ""
        while chunk := proc.stderr.read(256):
            buffer = (buffer + chunk)[-4000:]
            found = PROGRESS.findall(buffer)
            if kill_at is not None and found and not killed.is_set():
                done, total = map(int, found[-1])
                if total and done / total >= kill_at:
                    proc.send_signal(signal.SIGKILL)
                    killed.set()
        seen.append(buffer)

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    out = proc.stdout.read() if proc.stdout else ""
    code = proc.wait()
    reader.join(timeout=10)
    tail = (seen[0] if seen else "").replace("\r", "\n").strip().splitlines()[-3:]
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "exit": code,
        "killed": killed.is_set(),
        "stdout": out.strip().splitlines()[-4:],
        "stderr": tail,
    }


def label_audit(client: Any, plan: dict, truth: dict[int, str] | None) -> dict:
    """People label the audit's tasks (4 at once), with `truth`, or (None) as the model guessed; seconds."""
    started = time.perf_counter()
    tasks = plan["audit"]["plan"]["tasks"] if plan["audit"].get("plan") else []
    given = truth or {r["id"]: r["guess"] for r in plan["tasks"] if r["source"] == "audit"}
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: client.annotations.create(id=i, result=_result(given[i])), tasks))
    return {"tasks": len(tasks), "seconds": round(time.perf_counter() - started, 1)}


def agreement(client: Any, project: int, dataset: dict | None, people: int) -> dict:
    """Whether Label Studio holds exactly the file's model labels (one per task, the file's label) and all of the
    people's annotations, and no label set of a run is left."""
    from backend.labelstudio import tasks as ls_tasks
    from backend.loop import finish

    states = finish.read_states(client, project, _config())
    ours = {i: [held for _, held in s.ours] for i, s in states.items() if s.ours}
    wanted = {}
    if dataset is not None:
        wanted = {
            r["id"]: r["label"] for r in dataset["tasks"] if r["source"] == "model" and not states[r["id"]].others
        }
    sets = [v for v in ls_tasks.model_versions(client, project) if v.startswith(finish.LABEL_SET)]
    others = sum(s.others for s in states.values())
    problems = []
    if any(len(held) > 1 for held in ours.values()):
        problems.append("a task holds two model labels")
    if set(ours) != set(wanted):
        problems.append(f"{len(set(ours) ^ set(wanted))} tasks differ between the file and Label Studio")
    if any(ours[i][0].get("sentiment") != label for i, label in wanted.items() if i in ours):
        problems.append("a model label differs from the file's")
    if sets:
        problems.append(f"label sets left: {sets}")
    if others != people:
        problems.append(f"people's annotations: {others}, expected {people}")
    return {"ok": not problems, "problems": problems, "model_labels": len(ours), "people": others}


def run(
    url: str,
    api_key: str,
    *,
    tasks: int = 10_000,
    labeled: int = 1000,
    target: float = 0.3,
    kill_at: float = 0.6,
    real_model: bool = False,
    progress: bool = True,
) -> dict:
    """The six steps of the module's docstring against the Label Studio at `url`; every figure, and `ok`."""
    from label_studio_sdk import LabelStudio

    if not 0 < labeled < tasks:
        raise BenchError(f"--labeled must lie between 1 and --tasks - 1, got {labeled}")
    client = LabelStudio(base_url=url, api_key=api_key, timeout=600)
    texts, labels = _labels(tasks)
    steps: dict[str, Any] = {}
    started = time.perf_counter()
    project = import_project(client, texts, labels, labeled, progress)
    steps["import"] = {"seconds": round(time.perf_counter() - started, 1), "tasks": tasks, "labeled": labeled}
    listed: Any = client.tasks.list(project=project, include="id,data", page_size=1000)
    by_text = {task.data["text"]: task.id for task in listed}
    truth = {by_text[t]: y for t, y in zip(texts, labels)} if real_model else None
    with tempfile.TemporaryDirectory(prefix="bench-finish-") as tmp:
        env = {
            **os.environ,
            "LABEL_STUDIO_URL": url,
            "LABEL_STUDIO_API_KEY": api_key,
            "DATA_DIR": str(Path(tmp) / "data"),
        }
        if not real_model:
            from backend.dev import tiny_model

            env["LLM_MODEL"] = str(tiny_model.save(Path(tmp) / "tiny-model"))
        out = Path(tmp) / "finished.json"
        base = ["--project", str(project), "--out", str(out), "--target", str(target)]
        say = (lambda m: print(m, file=sys.stderr, flush=True)) if progress else (lambda m: None)

        say("plan ...")
        steps["plan"] = command([*base, "--apply"], env)
        plan = json.loads(out.read_text())
        if plan["audit"]["status"] != "drawn":
            raise BenchError(f"no audit was drawn ({plan['audit']['status']}): label more tasks or lower --target")
        say(f"people label the audit's {plan['audit']['size']} tasks ...")
        steps["audit"] = label_audit(client, plan, truth)
        people = labeled + steps["audit"]["tasks"]

        say(f"apply, killed with SIGKILL at {kill_at:.0%} of its writes ...")
        steps["apply_killed"] = command([*base, "--apply"], env, kill_at=kill_at)
        steps["apply_killed"]["model_labels_then"] = agreement(client, project, None, people)["model_labels"]
        say("apply again ...")
        out.unlink(missing_ok=True)
        steps["apply_again"] = command([*base, "--apply"], env)
        finished = json.loads(out.read_text())
        steps["apply_again"]["check"] = agreement(client, project, finished, people)
        say("undo ...")
        steps["undo"] = command(["--project", str(project), "--undo"], env)
        steps["undo"]["check"] = agreement(client, project, None, people)
        say("plan and audit again ...")
        steps["plan_again"] = command([*base, "--apply"], env)
        steps["audit_again"] = label_audit(client, json.loads(out.read_text()), truth)
        people += steps["audit_again"]["tasks"]
        say("apply, uninterrupted ...")
        steps["apply"] = command([*base, "--apply"], env)
        finished = json.loads(out.read_text())
        steps["apply"]["check"] = agreement(client, project, finished, people)
    counts = finished["counts"]
    ok = (
        steps["apply_killed"]["killed"]
        and all(steps[s]["exit"] == 0 for s in ("plan", "apply_again", "undo", "plan_again", "apply"))
        and all(steps[s]["check"]["ok"] for s in ("apply_again", "undo", "apply"))
    )
    return {
        "tasks": tasks,
        "labeled": labeled,
        "target": target,
        "model": "packaged" if real_model else "tiny random Qwen2",
        "project": project,
        "counts": counts,
        "steps": steps,
        "ok": bool(ok),
    }


def report(result: dict) -> str:
    s, c = result["steps"], result["counts"]
    lines = [
        f"labelloop finish on {result['tasks']} tasks ({result['labeled']} labeled by people, model: "
        f"{result['model']}, target {result['target']}): {c['model']} labeled by the model, {c['audit']} audited, "
        f"{c['needs_person']} need a person",
        f"  {'step':28} {'seconds':>8}  result",
        f"  {'import (tasks and labels)':28} {s['import']['seconds']:8.1f}",
        f"  {'plan (draws the audit)':28} {s['plan']['seconds']:8.1f}  exit {s['plan']['exit']}",
        f"  {'people label the audit':28} {s['audit']['seconds']:8.1f}  {s['audit']['tasks']} tasks",
        f"  {'apply, killed (SIGKILL)':28} {s['apply_killed']['seconds']:8.1f}  "
        f"{'killed' if s['apply_killed']['killed'] else 'NOT killed'} with "
        f"{s['apply_killed']['model_labels_then']} model labels in Label Studio",
    ]
    for key, name in (("apply_again", "apply again"), ("undo", "undo"), ("apply", "apply, uninterrupted")):
        if key == "apply":
            lines.append(
                f"  {'plan and audit again':28} {s['plan_again']['seconds'] + s['audit_again']['seconds']:8.1f}  "
                f"{s['audit_again']['tasks']} tasks"
            )
        check = s[key]["check"]
        verdict = "agrees" if check["ok"] else "DISAGREES: " + "; ".join(check["problems"])
        lines.append(
            f"  {name:28} {s[key]['seconds']:8.1f}  exit {s[key]['exit']}, {check['model_labels']} model labels, "
            f"{check['people']} people's: {verdict}"
        )
    lines.append(f"ok: {result['ok']}")
    return "\n".join(lines)
