"""backend/labelstudio/tasks.py reading and writing a real Label Studio; the tests without Label Studio are in tests/unit/test_ls_tasks.py."""

import time

import pytest
from labelstudio import needs_ls
from support.ls_tasks import CONFIG, SCHEMA, TEXTS, labeled_project, make_project, next_task, prediction, users  # noqa: F401 (fixtures)

from backend.labelstudio import schema as schemas
from backend.labelstudio import tasks as lt
from backend.quality import gold


@needs_ls
@pytest.mark.e2e
@pytest.mark.parametrize("page_size", [500, 2])
def test_fetch_labeled(users, labeled_project, monkeypatch, page_size):
    monkeypatch.setattr(lt, "PAGE_SIZE", page_size)
    admin, _, _ = users
    project, ids = labeled_project
    labeled, stats = lt.fetch_labeled(admin, project, SCHEMA, gold_set=gold.default_gold())
    got = {t.task_id: (t.label, t.annotations) for t in labeled}
    assert got == {
        ids["agree"]: ("Positive", 2),
        ids["conflict"]: ("Negative", 2),
        ids["skip_then_label"]: ("Neutral", 1),
        ids["truth"]: ("Negative", 2),
        ids["changed_mind"]: ("Negative", 3),
    }
    assert [t.task_id for t in labeled] == sorted(got)
    texts = {t.task_id: t.text for t in labeled}
    assert all(texts[ids[name]] == TEXTS[name] for name in ("agree", "conflict", "truth"))
    assert stats == lt.FetchStats(tasks=9, cancelled=1, conflicts=3, gold=1, synthetic=1, unusable=1)
    assert stats.tasks == len(labeled) + stats.gold + stats.synthetic + stats.cancelled + stats.unusable


@needs_ls
@pytest.mark.e2e
def test_fetch_pool_has_every_text_task_in_id_order(users, labeled_project, monkeypatch):
    monkeypatch.setattr(lt, "PAGE_SIZE", 3)
    admin, _, _ = users
    project, ids = labeled_project
    pool = lt.fetch_pool(admin, project, SCHEMA)
    assert pool == sorted((i, TEXTS[name]) for name, i in ids.items())  # the task with text 123 is left out
    assert len(lt.fetch_pool(admin, project, schemas.parse(CONFIG.replace("$text", "$review")))) == 0


@needs_ls
@pytest.mark.e2e
def test_missing_project_is_reported_not_retryable(users):
    admin, _, _ = users
    with pytest.raises(lt.LabelStudioUnavailable, match="HTTP 404.*reading the annotated tasks of project 99999") as e:
        lt.fetch_labeled(admin, 99999, SCHEMA, gold_set=gold.default_gold())
    assert not e.value.retryable


@needs_ls
@pytest.mark.e2e
def test_push_set_version_and_uncertainty_sampling(label_studio, users):
    admin, _, annotator = users
    project, ids = make_project(admin, "ls_tasks next", [{"text": TEXTS[n]} for n in "abcd"])

    with pytest.raises(lt.LabelStudioUnavailable, match="HTTP 400.*only once a prediction carries it") as e:
        lt.set_model_version(admin, project, "lst-v1")
    assert not e.value.retryable

    # An older version's low score must not count once the project is on lst-v1.
    assert lt.push_predictions(admin, project, [prediction(ids["b"], 0.01, "lst-v0")]) == 1
    calls = []
    new = [prediction(ids[n], s, "lst-v1") for n, s in zip("abcd", (0.8, 0.6, 0.2, 0.5))]
    assert lt.push_predictions(admin, project, new, chunk=3, progress=lambda *a: calls.append(a)) == 4
    assert calls == [(3, 4), (4, 4)]

    lt.set_model_version(admin, project, "lst-v1")
    admin.projects.update(id=project, sampling="Uncertainty sampling")
    assert admin.projects.get(id=project).model_version == "lst-v1"
    assert next_task(label_studio.url, project, annotator.token) == ids["c"]  # lowest lst-v1 score
    # c stays locked to the annotator, so the next user gets the next lowest.
    assert next_task(label_studio.url, project, label_studio.admin.token) == ids["d"]


@needs_ls
@pytest.mark.e2e
def test_push_counts_what_label_studio_wrote(users):
    admin, _, _ = users
    project, ids = make_project(admin, "ls_tasks push", [{"text": TEXTS[n]} for n in "abc"])
    batch = [
        prediction(ids["a"], 0.3, "v"),
        prediction(ids["b"], 0.4, "v", label="Bogus"),  # Label Studio drops it without an error
        prediction(10**8, 0.5, "v"),  # no such task: Label Studio refuses the whole request
        prediction(ids["c"], 0.6, "v"),
    ]
    assert lt.push_predictions(admin, project, batch, chunk=10) == 2
    scores = {t.id: [p.score for p in t.predictions] for t in admin.tasks.list(project=project, fields="all")}
    assert scores == {ids["a"]: [0.3], ids["b"]: [], ids["c"]: [0.6]}


@needs_ls
@pytest.mark.e2e
def test_push_1000_predictions_timing(users):
    admin, _, _ = users
    project = admin.projects.create(title="ls_tasks timing", label_config=CONFIG).id
    admin.projects.import_tasks(id=project, request=[{"text": f"Review number {i}."} for i in range(1000)])
    ids = [task_id for task_id, _ in lt.fetch_pool(admin, project, SCHEMA)]
    started = time.perf_counter()
    written = lt.push_predictions(admin, project, [prediction(i, (i % 97) / 97, "t") for i in ids])
    elapsed = time.perf_counter() - started
    print(f"pushed 1,000 predictions in {elapsed:.2f} s")
    assert written == 1000
    assert elapsed < 30, f"pushing 1,000 predictions took {elapsed:.1f} s"
    admin.projects.delete(id=project)
