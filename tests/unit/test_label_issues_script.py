"""labelloop label-issues: the export contract with the real model, bad input in one line, and the review flow in
a real Label Studio 1.23.2 (the tab holds exactly the flagged tasks; a label saved again unchanged is confirmed
and not flagged again)."""

from __future__ import annotations

from support.label_issues import CONFIG_PATH, script


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
