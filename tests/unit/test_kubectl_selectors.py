"""`-l` and `--field-selector` (labnet/kubectl/selectors.py): matching and the API server's
messages, from apimachinery's labels/selector_test.go and fields/selector_test.go."""

from __future__ import annotations

import pytest

from labnet.kubectl.selectors import SelectorError, parse_field_selector, parse_label_selector

LABELS = {"app": "web", "tier": "front", "version": "3"}


@pytest.mark.parametrize(("selector", "matches"), [
    ("", True),
    ("app=web", True), ("app==web", True), ("app!=web", False), ("app=db", False),
    ("app=web,tier=front", True), ("app=web,tier=back", False),
    ("app in (web,db)", True), ("app in (db)", False), ("app notin (db)", True),
    ("app notin (web, db)", False), ("missing notin (x)", True), ("missing!=x", True),
    ("app", True), ("missing", False), ("!missing", True), ("!app", False),
    ("version>2", True), ("version<3", False), ("missing>1", False),
    ("  app = web , tier in ( front ) ", True),
    ("app in (web,),tier", True), ("x in (in, notin)", False), ("app=", False),
    ("missing=", False),
])
def test_matching(selector, matches):
    assert parse_label_selector(selector).matches(LABELS) is matches


def test_no_labels_at_all():
    assert parse_label_selector("!app").matches(None)
    assert not parse_label_selector("app").matches(None)


KEY_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
           "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
           "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
             "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
             "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
             "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


@pytest.mark.parametrize(("selector", "message"), [
    ("app in x", "unable to parse requirement: found 'x' expected: '('"),
    ("app in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("app in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
    ("app b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("app=a b", "found 'b', expected: ',' or 'end of string'"),
    ("app=a,", "found '', expected: identifier after ','"),
    (",app", "found ',', expected: !, identifier, or 'end of string'"),
    ("app=(x)", "unable to parse requirement: found '(', expected: identifier"),
    ("app ~ x", "unable to parse requirement: found '~', expected: in, notin, =, ==, !=, gt, "
     "lt"),
    ("=x", "found '=', expected: !, identifier, or 'end of string'"),
    ("!=x", "found '!=', expected: !, identifier, or 'end of string'"),
    ("-app=x", f'unable to parse requirement: <nil>: Invalid value: "-app": {KEY_MSG}'),
    ("app=-x", f'unable to parse requirement: values[0][app]: Invalid value: "-x": '
     f"{VALUE_MSG}"),
    ("version>x", 'unable to parse requirement: values[0]: Invalid value: "x": for \'Gt\', '
     "'Lt' operators, the value must be an integer"),
])
def test_parse_errors_are_the_api_servers(selector, message):
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(selector)
    assert str(caught.value) == message


@pytest.mark.parametrize(("selector", "fields", "matches"), [
    ("metadata.name=a", {"metadata.name": "a"}, True),
    ("metadata.name==a", {"metadata.name": "a"}, True),
    ("metadata.name!=a", {"metadata.name": "a"}, False),
    ("metadata.name=a,metadata.namespace=b", {"metadata.name": "a",
                                              "metadata.namespace": "c"}, False),
    ("metadata.name=a\\,b", {"metadata.name": "a,b"}, True),
    ("metadata.name=", {"metadata.name": ""}, True),
    (",metadata.name=a,", {"metadata.name": "a"}, True),
])
def test_field_selectors(selector, fields, matches):
    assert parse_field_selector(selector).matches(fields) is matches


@pytest.mark.parametrize(("selector", "message"), [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    ("a=b\\x", "invalid field selector: invalid escape sequence: \\x"),
])
def test_field_selector_errors(selector, message):
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(selector)
    assert str(caught.value) == message
