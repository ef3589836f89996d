"""backend/labelstudio/tasks.py: the label resolution rule on its own, then reading and writing a real Label Studio."""

import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core import http_client
from labelstudio import free_port
from support.choices import result
from support.ls_tasks import (  # noqa: F401 (fixtures)
    CONFIG,
    GOLD_TEXT,
    SCHEMA,
    TEXTS,
    access_token,
    labeled_project,
    make_project,
    next_task,
    prediction,
    users,
)

from backend.labelstudio import schema as schemas
from backend.labelstudio import tasks as lt
from backend.quality import gold

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
