import pytest

from backend.schema import SchemaError, parse


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
        "from_name": "mood", "to_name": "body", "type": "choices", "value": {"choices": ["Awful"]}
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
        ('<View><Text name="t" value="$text"/></View>', "no single-choice <Choices>"),
        ('<View><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/></Choices></View>', "no <Text>"),
        (
            '<View><Text name="t" value="$text"/><Choices name="c" toName="t" choice="multiple">'
            '<Choice value="a"/><Choice value="b"/></Choices></View>',
            "multiple",
        ),
        (
            '<View><Text name="t" value="$text"/><Choices name="a" toName="t"><Choice value="x"/><Choice value="y"/>'
            '</Choices><Choices name="b" toName="t"><Choice value="x"/><Choice value="y"/></Choices></View>',
            "ambiguous",
        ),
        ('<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>', "two"),
        ('<View><Text name="t" value="fixed"/><Choices name="c" toName="t"><Choice value="a"/><Choice value="b"/>'
         '</Choices></View>', "task field"),
    ],
)
def test_unservable_configs_say_what_is_missing(config, message):
    with pytest.raises(SchemaError, match=message):
        parse(config)


@pytest.mark.parametrize("choices, message", [
    ('<Choice value=" "/><Choice value="Bad"/>', "empty value"),
    ('<Choice value="Good"/><Choice value="Good"/>', "at least two"),
])
def test_blank_or_repeated_choices_are_refused(choices, message):
    config = f'<View><Text name="t" value="$text"/><Choices name="c" toName="t">{choices}</Choices></View>'
    with pytest.raises(SchemaError, match=message):
        parse(config)
