"""labelloop label-issues: the export contract with the real model, bad input in one line, and the review flow in
a real Label Studio 1.23.2 (the tab holds exactly the flagged tasks; a label saved again unchanged is confirmed
and not flagged again)."""

from __future__ import annotations

import os

import labelstudio
import numpy as np
import pytest
import warm
from helpers import ROOT

from backend import corpus

SCRIPT = warm.labelloop("label-issues")
CONFIG_PATH = ROOT / "label_config" / "sentiment.xml"
LABELS = ["Positive", "Negative", "Neutral"]
needs_ls = pytest.mark.skipif(not labelstudio.available(), reason=labelstudio.MISSING_REASON)


def script(*args, env=None, timeout=600):
    full = {**os.environ, **(env or {})}
    return warm.run([*SCRIPT, *args], cwd=ROOT, env=full, timeout=timeout)


def result(label):
    return [{"from_name": "sentiment", "to_name": "review", "type": "choices", "value": {"choices": [label]}}]


def reviews(n: int, flips: int, seed: int):
    """n corpus reviews with their labels, `flips` of them changed to the next label: (texts, given, flipped rows)."""
    df = corpus.stratified_split(corpus.load(), [n], seed=seed)[0].reset_index(drop=True)
    flipped = set(np.random.default_rng(seed).choice(n, size=flips, replace=False).tolist())
    given = [LABELS[(LABELS.index(label) + 1) % 3] if i in flipped else label for i, label in enumerate(df["label"])]
    return list(df["text"]), given, flipped


def one_line_error(done, code, says):
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code and lines and lines[-1].startswith("error: ") and says in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- the export contract, real model


# ---------------------------------------------------------------- bad input


def test_bad_input_is_one_line(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    multi = tmp_path / "multi.xml"
    multi.write_text(
        '<View><Text name="t" value="$text"/><Choices name="c" toName="t" choice="multiple">'
        '<Choice value="A"/><Choice value="B"/></Choices></View>'
    )
    no_choice = tmp_path / "no_choice.xml"
    no_choice.write_text('<View><Text name="t" value="$text"/><TextArea name="n" toName="t"/></View>')
    cases = [
        ((), 2, "give an EXPORT file"),
        (("x.json",), 2, "--config CONFIG is required"),
        (("x.json", "--config", str(CONFIG_PATH), "--project", "1"), 2, "not both"),
        (("x.json", "--config", str(CONFIG_PATH), "--review"), 2, "--review needs --project"),
        (("x.json", "--config", str(tmp_path / "none.xml")), 2, "cannot read --config"),
        (("x.json", "--config", str(multi), "--question", "topic"), 2, "--question: no question named 'topic'"),
        (("x.json", "--config", str(no_choice)), 2, "--config"),
        ((str(bad_json), "--config", str(CONFIG_PATH)), 2, "is not valid JSON"),
        ((str(tmp_path / "missing.json"), "--config", str(CONFIG_PATH)), 2, "cannot read"),
        (("x.json", "--config", str(CONFIG_PATH), "--format", "xml"), 2, "invalid choice"),
    ]
    for args, code, says in cases:
        one_line_error(script(*args), code, says)
    one_line_error(script("--project", "1", env={"LABEL_STUDIO_URL": ""}), 1, "LABEL_STUDIO_URL is not set")


# ---------------------------------------------------------------- the review flow, real Label Studio
