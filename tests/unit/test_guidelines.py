import pytest

from backend import guidelines
from backend.llm import prompt


def test_default_guidelines_are_versioned_and_carry_rules_and_examples():
    g = guidelines.load()
    assert g.version and g.date and g.title
    assert {"Labels", "Rules"} <= set(g.sections)
    assert ("I loved every minute of it.", "Positive") in g.examples
    assert len(g.sha256) == 64


def test_prompt_holds_rules_and_only_the_configs_labels():
    g = guidelines.load()

    class Tok:  # the chat template is not under test here
        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    p = prompt.build(Tok(), ("Positive", "Negative"), g)
    assert "not bad" in p.prefix.lower() and "sarcasm" in p.prefix.lower()
    assert "Answer with exactly one label: Positive, Negative." in p.prefix
    assert "<assistant>Neutral" not in p.prefix  # few-shot turns for labels the config lacks are dropped
    assert "<assistant>Positive" in p.prefix
    assert p.suffix == "</user><assistant>"
    assert prompt.build(Tok(), ("Positive", "Negative"), g).sha256 == p.sha256
    assert prompt.build(Tok(), ("Positive", "Negative"), g, examples=False).sha256 != p.sha256


def test_missing_front_matter_is_a_clear_error(tmp_path):
    bad = tmp_path / "g.md"
    bad.write_text("## Labels\n- x\n")
    with pytest.raises(guidelines.GuidelinesError, match="front matter"):
        guidelines.load(bad)
    with pytest.raises(guidelines.GuidelinesError, match="cannot read"):
        guidelines.load(tmp_path / "missing.md")
