"""backend/labelstudio/tasks.py: the label resolution rule on its own, then reading and writing a real Label Studio."""

import time

import pytest
import requests
from label_studio_sdk import LabelStudio
from label_studio_sdk.core import http_client
from labelstudio import ROOT, free_port
from support.choices import result

from backend.labelstudio import schema as schemas
from backend.labelstudio import tasks as lt
from backend.quality import gold

CONFIG = (ROOT / "label_config" / "sentiment.xml").read_text(encoding="utf-8")
SCHEMA = schemas.parse(CONFIG)
ALIAS_SCHEMA = schemas.parse(
    '<View><Text name="review" value="$text"/><Choices name="sentiment" toName="review">'
    '<Choice value="Positive" alias="pos"/><Choice value="Negative" alias="neg"/></Choices></View>'
)


_ids = iter(range(1, 10_000))


def ann(label, user, second, cancelled=False, truth=False, **result_args):
    """An annotation as Label Studio lists it, updated at `second` past a fixed minute."""
    return {
        "id": next(_ids),
        "result": result(label, **result_args) if label is not None else [],
        "completed_by": user,
        "was_cancelled": cancelled,
        "ground_truth": truth,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": f"2026-01-01T00:00:{second:02d}.000001Z",
    }


# ---------------------------------------------------------------- resolve()


def test_the_votes_travel_with_a_voted_label_and_not_with_ground_truth():
    label, conflict, votes = lt._resolution(
        [ann("Positive", 1, 5), ann("Negative", 2, 6), ann("Negative", 1, 7)], SCHEMA
    )
    assert (
        label == "Negative" and conflict is False and sorted(votes) == [("user:1", "Negative"), ("user:2", "Negative")]
    )
    label, conflict, votes = lt._resolution([ann("Positive", 1, 5), ann("Negative", 2, 6, truth=True)], SCHEMA)
    assert label == "Negative" and conflict is True and votes == ()


def test_cancelled_annotations_are_ignored():
    assert lt.resolve([ann("Positive", 1, 9, cancelled=True), ann("Negative", 2, 1)], SCHEMA) == "Negative"
    assert lt.resolve([ann("Positive", 1, 9, cancelled=True)], SCHEMA) is None
    assert lt.resolve([], SCHEMA) is None


def test_ground_truth_wins_and_the_latest_ground_truth_of_several():
    votes = [ann("Positive", 1, 5), ann("Positive", 2, 6), ann("Negative", 3, 1, truth=True)]
    assert lt.resolve(votes, SCHEMA) == "Negative"
    votes.append(ann("Neutral", 4, 2, truth=True))
    assert lt.resolve(votes, SCHEMA) == "Neutral"
    # A cancelled ground truth is no ground truth.
    assert lt.resolve([ann("Positive", 1, 5), ann("Negative", 3, 6, truth=True, cancelled=True)], SCHEMA) == "Positive"


def test_majority_beats_recency():
    votes = [ann("Positive", 1, 1), ann("Positive", 2, 2), ann("Negative", 3, 9)]
    assert lt.resolve(votes, SCHEMA) == "Positive"


def test_each_annotator_counts_once_with_their_latest():
    # Counted per annotation, Positive would win 3 to 2.
    votes = [
        ann("Positive", 1, 1),
        ann("Positive", 1, 2),
        ann("Positive", 1, 3),
        ann("Negative", 2, 4),
        ann("Negative", 3, 5),
    ]
    assert lt.resolve(votes, SCHEMA) == "Negative"
    # An annotator who changed their mind counts with the newer answer, whatever the list order.
    assert lt.resolve([ann("Neutral", 1, 8), ann("Positive", 1, 2), ann("Positive", 2, 1)], SCHEMA) == "Neutral"


def test_tie_goes_to_the_most_recent_among_the_tied_labels():
    assert lt.resolve([ann("Positive", 1, 2), ann("Negative", 2, 1)], SCHEMA) == "Positive"
    assert lt.resolve([ann("Positive", 1, 1), ann("Negative", 2, 2)], SCHEMA) == "Negative"
    votes = [
        ann("Positive", 1, 1),
        ann("Positive", 2, 2),
        ann("Negative", 3, 3),
        ann("Negative", 4, 4),
        ann("Neutral", 5, 9),
    ]  # the newest, but not among the tied
    assert lt.resolve(votes, SCHEMA) == "Negative"


def test_update_time_not_creation_time_decides():
    older, newer = ann("Positive", 1, 1), ann("Negative", 2, 2)
    older["created_at"], newer["created_at"] = "2026-01-01T00:00:50Z", "2026-01-01T00:00:00Z"
    older["updated_at"] = "2026-01-01T00:01:00Z"  # edited after the other was made
    assert lt.resolve([older, newer], SCHEMA) == "Positive"


def test_results_without_a_known_label_are_ignored():
    junk = [
        ann("Bogus", 1, 5),
        ann("Negative", 2, 6, from_name="other"),
        ann("Negative", 3, 7, to_name="elsewhere"),
        ann(None, 4, 8),  # empty result, not cancelled
    ]
    assert lt.resolve(junk, SCHEMA) is None
    assert lt.resolve(junk + [ann("Positive", 5, 1)], SCHEMA) == "Positive"
    # Two different choices in one single-choice annotation say nothing.
    both = ann("Positive", 6, 9)
    both["result"][0]["value"]["choices"] = ["Positive", "Negative"]
    assert lt.resolve([both, ann("Neutral", 7, 1)], SCHEMA) == "Neutral"


def test_visible_values_map_to_aliases():
    assert ALIAS_SCHEMA.labels == ("pos", "neg")
    votes = [ann("pos", 1, 1), ann("Positive", 2, 2), ann("neg", 3, 3)]
    assert lt.resolve(votes, ALIAS_SCHEMA) == "pos"
    assert lt.resolve([ann("Negative", 1, 1)], ALIAS_SCHEMA) == "neg"
    assert lt.resolve([ann("Neutral", 1, 1)], ALIAS_SCHEMA) is None


def test_user_as_object_and_annotations_without_a_user():
    votes = [ann("Positive", {"id": 1}, 1), ann("Positive", {"id": 1}, 2), ann("Negative", 2, 3)]
    assert lt.resolve(votes, SCHEMA) == "Negative"  # user 1 once: a tie, and Negative is newer
    # Without completed_by every annotation is its own voter.
    assert lt.resolve([ann("Positive", None, 1), ann("Positive", None, 2), ann("Negative", 2, 3)], SCHEMA) == "Positive"


def test_unreachable_label_studio_says_so_in_one_line(monkeypatch):
    # The SDK still retries each refused connection, without its back-off's sleeps (about 2 s a call).
    monkeypatch.setattr(http_client, "_retry_timeout_from_retries", lambda retries: 0.0)
    url = f"http://127.0.0.1:{free_port()}"
    client = LabelStudio(base_url=url, api_key="x" * 40)
    for call in (
        lambda: lt.fetch_labeled(client, 1, SCHEMA, gold_set=gold.default_gold()),
        lambda: lt.fetch_pool(client, 1, SCHEMA),
        lambda: lt.set_model_version(client, 1, "v"),
        lambda: lt.push_predictions(client, 1, [{"task": 1, "result": [], "score": 0.5}]),
    ):
        with pytest.raises(lt.LabelStudioUnavailable) as caught:
            call()
        message = str(caught.value)
        assert message.startswith(f"cannot reach Label Studio at {url}") and "connection refused" in message
        assert "\n" not in message and caught.value.retryable


# ---------------------------------------------------------------- against a real Label Studio


GOLD_TEXT = gold.default_gold().items[0].text
TEXTS = {
    "agree": "A bright and funny family film.",
    "conflict": "The plot drags but the score is lovely.",
    "skipped": "I could not tell what this one was about.",
    "skip_then_label": "It is a movie, and it is two hours long.",
    "truth": "A cold, joyless slog.",
    "changed_mind": "Ambitious, uneven, sometimes brilliant.",
    "gold": GOLD_TEXT,
    "synthetic": "A made-up review written by the augmenter.",
    "junk": "Whatever this was, the annotation says nothing.",
    "a": "Unlabeled review a.",
    "b": "Unlabeled review b.",
    "c": "Unlabeled review c.",
    "d": "Unlabeled review d.",
}


def make_project(client, title, tasks):
    """A project with the sentiment config and these task data; {name: task id} for the named texts."""
    project = client.projects.create(title=title, label_config=CONFIG)
    client.projects.import_tasks(id=project.id, request=tasks)
    by_text = {t.data["text"]: t.id for t in client.tasks.list(project=project.id, page_size=100)}
    return project.id, {name: by_text[text] for name, text in TEXTS.items() if text in by_text}


@pytest.fixture(scope="module")
def users(label_studio):
    annotator = label_studio.create_annotator("ls-tasks-annotator@example.com", "ls-tasks-pass-1234")
    admin = LabelStudio(base_url=label_studio.url, api_key=label_studio.admin.token)
    return admin, LabelStudio(base_url=label_studio.url, api_key=annotator.token), annotator


@pytest.fixture(scope="module")
def labeled_project(users):
    admin, annotator, _ = users
    tasks = [{"text": text, **({"synthetic": True} if name == "synthetic" else {})} for name, text in TEXTS.items()]
    tasks.append({"text": 123})  # Label Studio accepts a number where the config shows text
    project, ids = make_project(admin, "ls_tasks labeled", tasks)

    def label(client, name, value, **kw):
        client.annotations.create(id=ids[name], result=result(value) if value else [], **kw)
        time.sleep(0.01)  # distinct update times, whatever the clock resolution

    label(admin, "agree", "Positive")
    label(annotator, "agree", "Positive")
    label(admin, "conflict", "Positive")
    label(annotator, "conflict", "Negative")  # a tie: the newer one wins
    label(annotator, "skipped", None, was_cancelled=True)
    label(annotator, "skip_then_label", None, was_cancelled=True)
    label(admin, "skip_then_label", "Neutral")
    label(admin, "truth", "Negative", ground_truth=True)
    label(annotator, "truth", "Positive")
    label(annotator, "changed_mind", "Positive")
    label(admin, "changed_mind", "Positive")
    label(annotator, "changed_mind", "Negative")  # the annotator's latest: 1 vs 1, and it is newer
    label(admin, "gold", "Positive")
    label(admin, "synthetic", "Negative")
    admin.annotations.create(id=ids["junk"], result=result("Positive", from_name="wrong"))
    return project, ids


def access_token(url, pat):
    answer = requests.post(f"{url}/api/token/refresh/", json={"refresh": pat}, timeout=10)
    answer.raise_for_status()
    return answer.json()["access"]


def next_task(url, project, pat):
    answer = requests.get(
        f"{url}/api/projects/{project}/next", headers={"Authorization": f"Bearer {access_token(url, pat)}"}, timeout=30
    )
    assert answer.status_code == 200, answer.text[:300]
    return answer.json()["id"]


def prediction(task, score, version, label="Positive"):
    return {"task": task, "result": result(label), "score": score, "model_version": version}
