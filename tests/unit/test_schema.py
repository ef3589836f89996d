import re

import pytest

from backend.labelstudio.schema import SET_SEPARATOR, SchemaError, parse, parse_config


def test_any_names_and_labels_are_taken_from_the_config():
    s = parse(
        '<View><Header value="x"/><Text name="body" value="$review"/>'
        '<Choices name="mood" toName="body"><Choice value="Great stuff"/><Choice value="Awful"/>'
        '<Choice value="Meh" alias="m"/></Choices></View>'
    )
    assert (s.from_name, s.to_name, s.data_key) == ("mood", "body", "review")
    assert s.labels == ("Great stuff", "Awful", "m")  # results carry the alias Label Studio stores
    assert s.names == ("Great stuff", "Awful", "Meh")  # the model reads what annotators see
    assert s.result("Awful") == {
        "from_name": "mood",
        "to_name": "body",
        "type": "choices",
        "value": {"choices": ["Awful"]},
    }


def test_other_controls_are_ignored_when_one_choices_fits():
    s = parse(
        '<View><Image name="img" value="$image"/><Choices name="c1" toName="img"><Choice value="a"/><Choice value="b"/>'
        '</Choices><Text name="t" value="$text"/><Choices name="c2" toName="t"><Choice value="x"/><Choice value="y"/>'
        '</Choices><TextArea name="note" toName="t"/></View>'
    )
    assert s.from_name == "c2"


@pytest.mark.parametrize(
    "config, message",
    [
        ("", "empty"),
        ("<View><Text", "not valid XML"),
        ('<View><Text name="t" value="$text"/></View>', "no <Choices>"),
        ('<View><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>', "no <Text>"),
        (
            '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
            "two",
        ),
        (
            '<View><Text name="t" value="fixed"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/>'
            "</Choices></View>",
            "task field",
        ),
    ],
)
def test_unservable_configs_say_what_is_missing(config, message):
    with pytest.raises(SchemaError, match=message):
        parse(config)


@pytest.mark.parametrize(
    "choices, message",
    [
        ('<Choice value=" "/><Choice value="Bad"/>', "empty value"),
        ('<Choice value="Good"/><Choice value="Good"/>', "at least two"),
    ],
)
def test_blank_or_repeated_choices_are_refused(choices, message):
    config = f'<View><Text name="t" value="$text"/><Choices name="c" toName="t">{choices}</Choices></View>'
    with pytest.raises(SchemaError, match=message):
        parse(config)


def choices_on(obj: str, attrs: str = "", choices: str = '<Choice value="Yes"/><Choice value="No"/>') -> str:
    return f'<View>{obj}<Choices name="c" toName="t" {attrs}>{choices}</Choices></View>'


TEXT = '<Text name="t" value="$text"/>'


@pytest.mark.parametrize("attrs", ["", 'choice="single"', 'choice="single-radio"'])
def test_every_single_choice_form_is_served(attrs):
    s = parse(choices_on(TEXT, attrs))
    assert (s.from_name, s.to_name, s.data_key, s.labels) == ("c", "t", "text", ("Yes", "No"))


@pytest.mark.parametrize(
    "obj, attrs, message",
    [
        (TEXT, 'choice="several"', 'choice="several"'),
        (TEXT, 'visibleWhen="choice-selected"', "shown only when another answer is chosen"),
        (TEXT, 'perRegion="true"', "per-region"),
        (TEXT, 'value="$options"', 'value="$options"'),
        ('<Image name="t" value="$image"/><Text name="x" value="$text"/>', "", "<Image>"),
        ('<Chat name="t" value="$chat"/><Text name="x" value="$text"/>', "", "<Chat>"),
        ('<Text name="x" value="$text"/>', "", "names no object tag"),
        ('<Text name="t" value="$page" valueType="url"/>', "", 'valueType="url"'),
        ('<HyperText name="t" value="$page" valueType="url"/>', "", 'valueType="url"'),
    ],
)
def test_a_choices_the_backend_cannot_fill_is_named_with_the_reason(obj, attrs, message):
    with pytest.raises(SchemaError, match=re.escape(message)):
        parse(choices_on(obj, attrs))


def test_choices_left_to_annotators_do_not_stop_those_that_can_be_filled():
    config = parse_config(
        '<View><Text name="t" value="$text"/><Choices name="tags" toName="t" choice="multiple"><Choice value="a"/>'
        '<Choice value="b"/></Choices><Choices name="span" toName="t" perRegion="true"><Choice value="a"/>'
        '<Choice value="b"/></Choices><Choices name="mood" toName="t" choice="single-radio"><Choice value="Up"/>'
        '<Choice value="Down"/></Choices><Rating name="r" toName="t"/><Labels name="l" toName="t">'
        '<Label value="X"/></Labels><Choices name="more" toName="t" visibleWhen="choice-selected" '
        'whenTagName="mood"><Choice value="p"/><Choice value="q"/></Choices></View>'
    )
    assert [(q.from_name, q.labels, q.multiple) for q in config.questions] == [
        ("tags", ("a", "b"), True),
        ("mood", ("Up", "Down"), False),
    ]
    assert config.primary.from_name == "tags"
    left = dict(config.left_out)
    assert set(left) == {"span", "r", "l", "more"}
    assert "per-region" in left["span"] and "<Rating> is not a choice" in left["r"]
    assert "visibleWhen" in left["more"]


def test_several_questions_are_each_filled_in_config_order():
    xml = (
        '<View><Text name="t" value="$text"/><TextArea name="note" toName="t"/>'
        '<Choices name="a" toName="t" choice="single-radio"><Choice value="x"/><Choice value="y"/></Choices>'
        '<Choices name="b" toName="t"><Choice value="x"/><Choice value="y"/><Choice value="z"/></Choices></View>'
    )
    config = parse_config(xml)
    assert parse(xml) == config.primary  # parse() gives the first question
    assert config.names == ("a", "b") and not config.single
    assert config.left_out == (("note", "<TextArea> is not a choice: left to the annotator"),)
    assert config.question("b").labels == ("x", "y", "z")
    with pytest.raises(SchemaError, match="no question named 'c'"):
        config.question("c")


def test_a_question_on_another_text_is_left_out_with_the_reason():
    config = parse_config(
        '<View><Text name="t" value="$text"/><Text name="u" value="$title"/>'
        '<Choices name="a" toName="t"><Choice value="x"/><Choice value="y"/></Choices>'
        '<Choices name="b" toName="u"><Choice value="x"/><Choice value="y"/></Choices></View>'
    )
    assert config.names == ("a",)
    assert "$title" in dict(config.left_out)["b"]


def test_a_multi_label_answer_is_one_string_in_config_order():
    q = parse(choices_on(TEXT, 'choice="multiple"', '<Choice value="A"/><Choice value="B"/><Choice value="C"/>'))
    assert q.multiple and q.labels == ("A", "B", "C")
    assert q.key(["C", "A"]) == f"A{SET_SEPARATOR}C" and q.members(q.key(["C", "A"])) == ("A", "C")
    assert q.key([]) == "" and q.members("") == ()
    assert q.result("A", "C")["value"] == {"choices": ["A", "C"]}


def test_the_text_tag_reading_a_task_field_is_labeled_rather_than_a_caption():
    s = parse(
        choices_on('<Text name="t" value="Read this:"/><Text name="body" value="$review"/>').replace(
            'toName="t"', 'toName="t,body"'
        )
    )
    assert (s.to_name, s.data_key) == ("body", "review")


def test_text_of_a_text_tag_is_the_field_as_it_is():
    s = parse(choices_on(TEXT))
    assert s.object_tag == "Text" and s.shape == "a string"
    assert s.text_of({"text": "  Fine <b>film</b> "}) == "  Fine <b>film</b> "
    assert s.text_of({"text": 5}) is None and s.text_of({"other": "x"}) is None and s.text_of("text") is None


def test_hypertext_is_classified_on_its_visible_text():
    s = parse(choices_on('<HyperText name="t" value="$html"/>'))
    assert (s.object_tag, s.data_key) == ("HyperText", "html")
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body><h1>Great&nbsp;film</h1>"
        "<p>Un<b>believ</b>able &amp; fun</p><script>alert('x')</script><p>Go<br>see it</p></body></html>"
    )
    assert s.text_of({"html": html}) == "Great film Unbelievable & fun Go see it"
    assert s.text_of({"html": "<div>  </div>"}) == ""  # blank: the caller says it is empty
    assert s.text_of({"html": ["<p>x</p>"]}) is None


def test_paragraphs_are_classified_on_the_dialogue_lines_with_their_speakers():
    s = parse(choices_on('<Paragraphs name="t" value="$messages" layout="dialogue" nameKey="role" textKey="content"/>'))
    assert (s.object_tag, s.data_key, s.name_key, s.text_key) == ("Paragraphs", "messages", "role", "content")
    lines = [{"role": "user", "content": "Hi"}, {"content": "anyone?"}, {"role": "assistant", "content": "Hello"}]
    assert s.text_of({"messages": lines}) == "user: Hi\nanyone?\nassistant: Hello"
    assert s.text_of({"messages": []}) == ""
    for bad in ("user: Hi", [{"role": "user"}], [{"role": "user", "content": 3}], ["Hi"], None):
        assert s.text_of({"messages": bad}) is None, bad
    assert "list of" in s.shape and '"content"' in s.shape


def test_paragraphs_read_the_default_author_and_text_keys():
    s = parse(choices_on('<Paragraphs name="t" value="$dialogue"/>'))
    assert s.text_of({"dialogue": [{"author": "A", "text": "one"}, {"author": "B", "text": "two"}]}) == "A: one\nB: two"
