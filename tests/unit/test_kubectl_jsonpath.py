"""kubectl's JSONPath dialect (labnet/kubectl/jsonpath.py): the cases of client-go's own tests
(util/jsonpath/jsonpath_test.go and parser_test.go), with their expected output, on JSON data as
kubectl holds it (integers as integers), plus what kubectl printed for templates tried against
it (`kubectl ... -o jsonpath=`)."""

from __future__ import annotations

import pytest

from labnet.kubectl.jsonpath import JSONPath, JSONPathError, go_float, go_sprint

NODES = {
    "kind": "List",
    "items": [
        {"kind": "None",
         "metadata": {"name": "127.0.0.1", "labels": {"kubernetes.io/hostname": "127.0.0.1"}},
         "status": {"capacity": {"cpu": "4"}, "ready": True,
                    "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.1"}]}},
        {"kind": "None",
         "metadata": {"name": "127.0.0.2", "labels": {"kubernetes.io/hostname": "127.0.0.2"}},
         "status": {"capacity": {"cpu": "8"}, "ready": False,
                    "addresses": [{"type": "LegacyHostIP", "address": "127.0.0.2"},
                                  {"type": "another", "address": "127.0.0.3"}]}},
    ],
    "users": [{"name": "myself", "user": {}},
              {"name": "e2e", "user": {"username": "admin", "password": "secret"}}],
}

PODS = {"items": [
    {"metadata": {"name": "pod1"}, "spec": {"containers": [
        {"name": "foo", "another": [{"name": "value1"}, {"name": "value2"}]},
        {"name": "bar", "another": [{"name": "value1"}, {"name": "value2"}]}]}},
    {"metadata": {"name": "pod2"}, "spec": {"containers": [
        {"name": "baz", "another": [{"name": "value1"}, {"name": "value2"}]}]}},
]}

TYPES = {"bools": [True, False, True, False], "integers": [1, 2, 3, 4],
         "floats": [1.0, 2.2, 3.3, 4.0], "strings": ["one", "two", "three", "four"],
         "interfaces": [True, "one", 1, 1.1],
         "maps": [{"name": "one", "value": 1}, {"name": "two", "value": 2.02}]}

POINTS = [{"id": "i1", "x": 4, "y": -5}, {"id": "i2", "x": -2, "y": -5, "z": 1},
          {"id": "i3", "x": 8, "y": 3}, {"id": "i4", "x": -6, "y": -1},
          {"id": "i5", "x": 0, "y": 2, "z": 1}, {"id": "i6", "x": 1, "y": 4},
          {"id": "i7", "x": None, "y": 4}]


@pytest.mark.parametrize(("template", "data", "expected"), [
    # client-go TestKubernetes
    ("{range .items[*]}{.metadata.name}, {end}{.kind}", NODES, "127.0.0.1, 127.0.0.2, List"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{end}', NODES, "127.0.0.1\t127.0.0.2\t"),
    ("{.items[*].status.addresses[*].address}", NODES, "127.0.0.1 127.0.0.2 127.0.0.3"),
    ("{range .items[*]}{range .status.addresses[*]}{.address}, {end}{end}", NODES,
     "127.0.0.1, 127.0.0.2, 127.0.0.3, "),
    ("{.items[*].metadata.name}", NODES, "127.0.0.1 127.0.0.2"),
    ("{.items[*]['metadata.name', 'status.capacity']}", NODES,
     '127.0.0.1 127.0.0.2 {"cpu":"4"} {"cpu":"8"}'),
    ("{range .items[*]}[{.metadata.name}, {.status.capacity}] {end}", NODES,
     '[127.0.0.1, {"cpu":"4"}] [127.0.0.2, {"cpu":"8"}] '),
    ('{.users[?(@.name=="e2e")].user.password}', NODES, "secret"),
    ("{.items[0].metadata.labels.kubernetes\\.io/hostname}", NODES, "127.0.0.1"),
    ('{.items[?(@.metadata.labels.kubernetes\\.io/hostname=="127.0.0.1")].kind}', NODES,
     "None"),
    ("{.items[?(@..ready==true)].metadata.name}", NODES, "127.0.0.1"),
    # client-go TestNestedRanges, TestEmptyRange
    ('{range .items[*]}{.metadata.name}{":"}{range @.spec.containers[*]}{.name}{","}{end}'
     '{"+"}{end}', PODS, "pod1:foo,bar,+pod2:baz,+"),
    ('{range .items[*]}{.metadata.name}{"~"}{range @.spec.containers[*]}{.name}{":"}'
     '{range @.another[*]}{.name}{","}{end}{"+"}{end}{"#"}{end}', PODS,
     "pod1~foo:value1,value2,+bar:value1,value2,+#pod2~baz:value1,value2,+#"),
    ('{range .items[*]}{.metadata.name}{"\\t"}{range @.spec.containers[*]}{.name}{" "}{end}'
     '{"\\t"}{range @.spec.containers[*]}{.name}{" "}{end}{"\\n"}{end}', PODS,
     "pod1\tfoo bar \tfoo bar \npod2\tbaz \tbaz \n"),
    ("{range .items[*]}{.metadata.name}{end}", {"items": []}, ""),
    ('{range .items[*]}{.metadata.name}{":"}{range @.spec.containers[*]}{.name}{","}{end}'
     '{"+"}{end}', {"items": []}, ""),
    # client-go TestTypesInput (integers as kubectl has them)
    ("{ .bools }", TYPES, "[true,false,true,false]"),
    ("{ .bools[-1] }", TYPES, "false"),
    ("{ .bools[:4:2] }", TYPES, "true true"),
    ("{ .integers[-2] }", TYPES, "3"),
    ("{ .integers[0:2] }", TYPES, "1 2"),
    ("{ .floats }", TYPES, "[1,2.2,3.3,4]"),
    ("{ .floats[0] }", TYPES, "1"),
    ("{ .strings }", TYPES, '["one","two","three","four"]'),
    ("{ .strings[0:2] }", TYPES, "one two"),
    ("{ .interfaces }", TYPES, '[true,"one",1,1.1]'),
    ("{ .interfaces[:4:2] }", TYPES, "true 1"),
    ("{ .maps[0] }", TYPES, '{"name":"one","value":1}'),
    ("{ .maps[1::2] }", TYPES, '{"name":"two","value":2.02}'),
    # client-go TestStructInput, TestJSONInput
    ("hello jsonpath", None, "hello jsonpath"),
    ("{..}", [1, 2, 3], "[1,2,3]"),
    ("{[?(@<5)]}", [2, 6, 3, 7], "2 3"),
    ('{"{"}', None, "{"),
    ("{[1,3,4]}", [0, 1, 2, 3, 4], "1 3 4"),
    ("{[0:2]}", ["Monday", "Tudesday"], "Monday Tudesday"),
    ("{[?(@.z)].id}", POINTS, "i2 i5"),
    ("{[0]['id']}", POINTS, "i1"),
    ("{[-1]['x']}", POINTS, "null"),
    ("{[?(@.y>=4)].id}", POINTS, "i6 i7"),
    ("{.hello}", {}, ""),
    ("before-{.hello}after", {}, "before-after"),
    # what kubectl 1.32 printed for these
    ("{.metadata.name}\\n", {"metadata": {"name": "a"}}, "a\\n"),
    ("{.spec.containers[-1:].name}", {"spec": {"containers": [{"name": "c"}, {"name": "d"}]}},
     "d"),
    ("{.spec.containers.name}", {"spec": {"containers": [{"name": "c"}]}}, ""),
    ("{.status.big} {.status.f}", {"status": {"big": 1000000, "f": None}}, "1000000 null"),
    ("{.metadata.labels.*}", {"metadata": {"labels": {"tier": "web", "app": "x"}}}, "x web"),
    ("{$.kind}", {"kind": "Pod"}, "Pod"),
])
def test_templates(template, data, expected):
    assert JSONPath(template).execute(data) == expected


def test_recursive_descent_visits_containers_in_key_order():
    assert JSONPath("{..name}").execute(NODES) == "127.0.0.1 127.0.0.2 myself e2e"
    assert JSONPath("{...name}").execute(NODES) == "127.0.0.1 127.0.0.2 myself e2e"


@pytest.mark.parametrize(("template", "message"), [
    # client-go TestParser's failures
    ("{.hello", "unclosed action"),
    ("{*}", "unrecognized character in action: U+002A '*'"),
    ("{+12.3.0}", "cannot parse number +12.3.0"),
    ("{[1}", "unterminated array"),
    ("{[?(.price]}", "unterminated filter"),
    ("{........}", "invalid multiple recursive descent"),
    ("{[1:2:3:4]}", "invalid array index 1:2:3:4"),
])
def test_parse_errors(template, message):
    with pytest.raises(JSONPathError) as caught:
        JSONPath(template)
    assert str(caught.value) == message


@pytest.mark.parametrize(("template", "data", "message"), [
    # client-go's failStoreTests (missing keys refused) and kubectl's own
    ("{hello}", {}, "unrecognized identifier hello"),
    ("{.Labels[0]}", {"Labels": {"a": 1}}, "map[string]interface {} is not array or slice"),
    ("{.Book[?(@.Price<>10)]}", {"Book": [{"Price": 1}]}, "unrecognized filter operator <>"),
    ("{range .Labels.*}{@}{end}{end}", {"Labels": {"a": 1}}, "not in range, nothing to end"),
    ("{.items[5]}", {"items": [1, 2]}, "array index out of bounds: index 5, length 2"),
    ("{.items[?(@.p==80.0)]}", {"items": [{"p": 80}]}, "incompatible types for comparison"),
    ("{.items[0:3:0]}", {"items": [1, 2, 3]}, "step must be > 0"),
    ("{[?(@.x>=0)].id}", POINTS, "invalid type for comparison"),  # i7's x is null
])
def test_evaluation_errors(template, data, message):
    with pytest.raises(JSONPathError) as caught:
        JSONPath(template, allow_missing_keys=False).execute(data)
    assert str(caught.value) == message


def test_missing_keys_are_errors_only_when_asked():
    assert JSONPath("{.hello}").execute({}) == ""
    with pytest.raises(JSONPathError, match="hello is not found"):
        JSONPath("{.hello}", allow_missing_keys=False).execute({})


def test_json_output_of_results():
    assert JSONPath("{.a[*]}", output_json=True).execute({"a": [1, "<b>"]}) == \
        '[\n    1,\n    "\\u003cb\\u003e"\n]\n'


@pytest.mark.parametrize(("value", "shown"), [
    (1e6, "1e+06"), (100000.0, "100000"), (1234567.0, "1.234567e+06"), (0.5, "0.5"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (2.2, "2.2"), (-3.25, "-3.25"), (0.0, "0")])
def test_floats_print_as_go_prints_them(value, shown):
    assert go_float(value) == shown


def test_custom_columns_values_print_as_go_sprint():
    assert go_sprint({"b": [1, "x"], "a": None}) == "map[a:<nil> b:[1 x]]"
    assert go_sprint(True) == "true"
