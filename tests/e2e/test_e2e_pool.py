"""Pool calibration and the per-project recipe end to end, against a real Label Studio and the backend under real
gunicorn with the real 0.5B model.

A project whose config no fitted calibration file matches (the news topics config) connects: the backend reads its
pool in the background, measures a pool calibration from its texts (predictor.measure_pool, loop.ensure_pool),
writes a prediction for every task under a new "-domain-" version (domain-context calibration, auto's default) and makes it the project's model_version. Then a
few annotations train a model: the run's record names the recipe the labels chose by cross-validation, the best of
its candidates. On the demo's config (SELF_TEACH=1) a first model is taught at connect by the LLM's surest answers
before any label (self_training.teach)."""

from __future__ import annotations

import json

import labelstudio
import pytest
import requests
from helpers import ROOT, gunicorn, wait_for
from label_studio_sdk import LabelStudio

from backend.labelstudio import sync, task_files

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)]

CONFIG = ROOT / "label_config" / "news_topics.xml"
GUIDELINES = ROOT / "guidelines" / "news_topics.md"

# Short invented newswire sentences, lowercase without digits as the guidelines describe; three per topic.
NEWS = {
    "Earnings": [
        "acme corp said quarterly net profit rose to ten mln dlrs on higher sales",
        "the retailer reported a first quarter loss and cut its dividend",
        "steel maker posts record annual revenues and declares a stock split",
    ],
    "Acquisitions": [
        "bigco agreed to buy smallco for three hundred mln dlrs in cash",
        "the bank said it will merge with a regional rival in a share swap",
        "investor group takes a nine pct stake in the chemicals maker",
    ],
    "Crude oil": [
        "opec ministers agreed to cut crude output to support oil prices",
        "oil prices climbed as refinery outages tightened supplies",
        "the company found new oil reserves in its offshore exploration well",
    ],
    "Trade": [
        "the trade deficit widened as imports of cars surged",
        "officials resumed talks on tariffs on textile exports",
        "japan exports to the united states rose sharply last month",
    ],
    "Currency": [
        "the dollar fell against the yen in nervous foreign exchange trading",
        "the central bank sold marks to support the weak franc",
        "money market operations drained liquidity and firmed the pound",
    ],
    "Interest rates": [
        "major banks raised their prime lending rate by half a point",
        "the central bank cut its discount rate to spur growth",
        "analysts expect interest rates to stay unchanged this year",
    ],
    "Shipping": [
        "a strike by dock workers closed the port for a third day",
        "the shipping line ordered four new container vessels",
        "freight rates for bulk carriers rose as ships waited at the canal",
    ],
    "Grain": [
        "the wheat harvest is expected to be larger than last year",
        "the country bought corn from american exporters for delivery in may",
        "grain prices rose after drought damaged crops in the plains",
    ],
}
ITEMS = [(text, label) for label, texts in NEWS.items() for text in texts]
N_TASKS = len(ITEMS)  # 24
LABELED = [item for label, texts in NEWS.items() for item in ((text, label) for text in texts[:2])]  # 16, two a topic


@pytest.fixture(scope="module")
def pool_backend(label_studio, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pool-backend")
    env = {
        "DATA_DIR": str(tmp / "data"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.admin.token,
        "GUIDELINES": str(GUIDELINES),
        # No CALIBRATION: auto, the default; a project with no matching fitted file gets the domain-context
        # calibration measured on its pool ("-domain-" in the version).
    }
    with gunicorn(env, tmp / "gunicorn.log", wait=180.0) as (url, _):
        yield url, tmp / "data", tmp / "gunicorn.log"


def test_connect_measures_a_pool_calibration_then_labels_choose_the_recipe(label_studio, pool_backend):
    backend_url, data_dir, log_path = pool_backend
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    project = sync.ensure_project(admin, "E2E pool calibration", CONFIG, GUIDELINES).id
    tasks = [{"data": {"text": t, task_files.HASH_KEY: task_files.task_hash({"text": t})}} for t, _ in ITEMS]
    sync.import_tasks(admin, project, tasks, progress=False)
    connected = sync.connect_backend(admin, project, backend_url, progress=False)
    assert connected.tasks == N_TASKS

    # 1. The pool calibration: measured in the background after /setup, a new version, the project switched to it.
    # Label Studio calls /setup several times while connecting, so a second re-score may follow the first and
    # publish the same version again as "<version>+2" (a name Label Studio does not hold yet): wait for the last.
    def settled():
        answer = requests.get(f"{backend_url}/versions", params={"project": project}, timeout=10).json()
        version = admin.projects.get(id=project).model_version or ""
        return (version, answer) if "-domain-" in version and not answer["busy"] else None

    version, versions = wait_for("a -domain- model_version and an idle loop", settled, timeout=420, every=2)
    assert admin.projects.get(id=project).model_version == version
    for task in admin.tasks.list(project=project, fields="all"):
        # The pool's set replaced the connect-time one: one prediction per task, from the pool version.
        assert [p.model_version for p in task.predictions or []] == [version], task.id
        (prediction,) = task.predictions
        assert prediction.result[0]["value"]["choices"][0] in NEWS, prediction.result

    served = version.split("+")[0]  # the LLM's version; the published set's name may carry "+2"
    assert served in versions["versions"], versions
    assert versions["current"] is None and versions["training"] == [], versions  # SELF_TEACH is off by default

    registry = json.loads((data_dir / "projects" / str(project) / "registry.json").read_text())
    measured = registry["settings"]["pool_calibration"]
    assert measured["size"] == N_TASKS, measured
    assert [c["method"] for c in measured["questions"].values()] == ["domain"], measured
    assert registry["published"][-1] == version, registry["published"]

    task = next(iter(admin.tasks.list(project=project, fields="all")))
    answer = requests.post(
        f"{backend_url}/predict",
        timeout=120,
        json={
            "tasks": [{"id": task.id, "data": task.data}],
            "project": f"{project}.1",
            "label_config": CONFIG.read_text(),
        },
    )
    assert answer.status_code == 200, answer.text
    # Answered under the name the pool's set was published as, the project's model_version.
    assert answer.json()["model_version"] == version, answer.json()
    assert answer.json()["results"][0]["model_version"] == version, answer.json()

    # 2. The per-project recipe: annotations → webhooks → a run on all of them names the best-scoring candidate.
    by_text = {t.data["text"]: t.id for t in admin.tasks.list(project=project, fields="all")}
    for text, label in LABELED:
        admin.annotations.create(
            id=by_text[text],
            result=[{"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": [label]}}],
        )

    def trained():
        answer = requests.get(f"{backend_url}/versions", params={"project": project}, timeout=10).json()
        runs = [r for r in answer["training"] if r.get("labels") == len(LABELED)]
        return runs if runs and not answer["busy"] else None

    record = wait_for(f"a training run on all {len(LABELED)} labels", trained, timeout=420, every=2)[-1]
    assert record["result"] in ("promoted", "kept"), record
    scores = record["recipe_scores"]
    assert len(scores) >= 2 and record["recipe"] in scores, record
    assert scores[record["recipe"]] == max(scores.values()), record
    assert record["cv_macro_f1"] == scores[record["recipe"]], record
    assert record["stats"]["unusable"] == 0, record
    # Trained on the pool-calibrated LLM: the run's version extends the serving one.
    assert record["version"].startswith(served + "-r"), record
    log_text = log_path.read_text()
    assert "Traceback" not in log_text
    assert "calibrated on %d of its texts" % N_TASKS in log_text


SENTIMENT_CONFIG = ROOT / "label_config" / "sentiment.xml"
# Short invented posts about airlines and gadgets, not movie reviews: the shipped fitted file (fitted on Rotten
# Tomatoes reviews) matches the demo's config and guidelines, but not these texts.
POSTS = {
    "Positive": [
        "the crew on my flight this morning were lovely, thank you",
        "new phone battery lasts two days, really happy with it",
        "landed early and my bag was first off the belt, great job",
        "customer support fixed my booking in five minutes, impressed",
    ],
    "Negative": [
        "third delay this week and nobody at the gate knows anything",
        "the update bricked my tablet and support keeps hanging up",
        "lost my luggage again, worst airline i have ever used",
        "charged twice for one seat and still waiting for a refund",
    ],
    "Neutral": [
        "flight 212 to boston now boards from gate b7",
        "the new model ships in march in three colours",
        "does anyone know if the lounge opens before six",
        "the airline announced a new route to lisbon starting june",
    ],
}
POST_ITEMS = [(text, label) for label, texts in POSTS.items() for text in texts]
UNLABELED_POSTS = [  # tasks nobody labels: what a run below 50 labels self-trains on
    "boarding pass app crashed at security so i had to print one",
    "switched carriers last month, so far so good",
    "my headphones arrived today",
    "the flight was fine i guess, the food was cold",
    "anyone tried the new tablet keyboard yet",
    "gate agent upgraded my seat for free, made my day",
]


@pytest.fixture(scope="module")
def demo_backend(label_studio, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo-config-backend")
    env = {
        "DATA_DIR": str(tmp / "data"),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.admin.token,
        # The demo's guidelines and config (defaults), CALIBRATION auto: the shipped fitted file matches them.
        "SELF_TEACH": "1",  # a first model taught by the LLM's own answers at connect
    }
    with gunicorn(env, tmp / "gunicorn.log", wait=180.0) as (url, _):
        yield url, tmp / "data", tmp / "gunicorn.log"


def test_the_demo_config_on_other_texts_is_served_the_pools_calibration_then_the_labels_choose(
    label_studio, demo_backend
):
    backend_url, data_dir, log_path = demo_backend
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    project = sync.ensure_project(
        admin, "E2E other texts, demo config", SENTIMENT_CONFIG, ROOT / "guidelines" / "sentiment.md"
    ).id
    texts = [t for t, _ in POST_ITEMS] + UNLABELED_POSTS
    tasks = [{"data": {"text": t, task_files.HASH_KEY: task_files.task_hash({"text": t})}} for t in texts]
    sync.import_tasks(admin, project, tasks, progress=False)
    sync.connect_backend(admin, project, backend_url, progress=False)

    # Before the pool is read the fitted file serves (it matches config, guidelines and model); the pool's texts
    # lie far from its reviews, so the pool's own calibration replaces it.
    def settled():
        answer = requests.get(f"{backend_url}/versions", params={"project": project}, timeout=10).json()
        version = admin.projects.get(id=project).model_version or ""
        return (version, answer) if "-domain-" in version and not answer["busy"] else None

    version, versions = wait_for("a -domain- model_version and an idle loop", settled, timeout=420, every=2)
    assert version.split("+")[0].endswith("-r1") and versions["current"] == version.split("+")[0], versions
    calibration = versions["calibration"]
    assert calibration["methods"] == ["domain"], calibration
    assert calibration["resemblance"] < calibration["resemblance_needed"], calibration
    assert "instead of the fitted file" in calibration["reason"], calibration
    assert any("-fitted-" in v for v in versions["versions"]), versions  # the file was there, and matched

    by_text = {t.data["text"]: t.id for t in admin.tasks.list(project=project, fields="all")}
    for text, label in POST_ITEMS:
        admin.annotations.create(
            id=by_text[text],
            result=[{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}],
        )

    def trained():
        answer = requests.get(f"{backend_url}/versions", params={"project": project}, timeout=10).json()
        runs = [r for r in answer["training"] if r.get("labels") == len(POST_ITEMS)]
        return (runs, answer) if runs and not answer["busy"] else None

    runs, answer = wait_for(f"a training run on all {len(POST_ITEMS)} labels", trained, timeout=420, every=2)
    record = runs[-1]
    scores = record["recipe_scores"]
    # How likely each label-free calibration of the LLM finds the labels; the likeliest competes with the trained
    # recipes, and replaces the served one even when nothing trained beats it.
    loglik = record["calibration_loglik"]
    assert list(loglik) == ["domain", "none", "pool"], record
    likeliest = max(loglik, key=lambda name: loglik[name])
    assert set(scores) == {f"llm:{likeliest}", "mixed", "state_blend", "blend"}, record
    assert scores[record["recipe"]] == max(scores.values()), record
    # The first model was taught at connect (SELF_TEACH=1), before any label, by the LLM's surest answers on every
    # task (backend/learning/self_training.py): it answered the pool under "<the -domain- LLM version>-r1". Annotations arrive one by one, so runs on fewer labels may come next: each
    # that could choose faced the promotion gate, the taught model the first incumbent.
    taught = answer["training"][0]
    assert taught["labels"] == 0 and taught["recipe"] == "state_blend", taught
    assert taught["self_training"]["unlabeled"] == len(texts), taught
    chose = [r for r in answer["training"] if "recipe_scores" in r]
    assert chose[0]["incumbent"] == taught["version"], chose[0]
    for run in chose:
        assert (run["result"] == "promoted") == (run["cv_macro_f1"] > run["incumbent_macro_f1"]), run
    promoted = [r for r in answer["training"] if r.get("result") == "promoted"]
    assert answer["current"] == promoted[-1]["version"], answer
    # Below 50 labels a promoted trained recipe was fitted again with its surest answers on the tasks nobody had
    # labeled at that run; the LLM under a calibration is left as it is.
    for run in promoted[1:]:
        if run["recipe"].startswith("llm:"):
            assert "self_training" not in run, run
        else:
            joined = run["self_training"]
            assert joined["unlabeled"] == len(texts) - run["labels"], run
            assert 1 <= joined["pseudo_labels"] == sum(joined["per_label"].values()) <= run["labels"], run
    log_text = log_path.read_text()
    assert "Traceback" not in log_text
    assert "instead of the fitted file" in log_text
