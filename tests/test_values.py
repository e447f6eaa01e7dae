"""JSON values: freezing (what is refused, and where), paths into values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charmspace.errors import NotJSONError, PathTypeError, SchemaError
from charmspace.types import JSONValue, Path
from charmspace.values import MAX_DEPTH, dumps, freeze, getpath, loads, same, setpath

JOHN = freeze({"items": [1, 2, 3], "name": "John", "age": 41, "nothing": None, "tags": {}})


# --- setpath: writing below a value -----------------------------------------------------


@pytest.mark.parametrize(
    ("path", "where", "found", "needed", "hint"),
    [
        (("items", "x"), ("items",), "a list", "an object", "Write at items/<index>"),
        (("name", "first"), ("name",), "a string", "an object", "Set name to an object first"),
        (("age", "years"), ("age",), "a number", "an object", "Set age to an object first"),
        (("items", 0, "x"), ("items", 0), "a number", "an object", "Set items/0 to an object"),
        (("tags", 0), ("tags",), "an object", "a list", "Set tags to a list first"),
        (("nothing", 0), ("nothing",), "null", "a list", "Set nothing to a list first"),
    ],
)
def test_writing_below_a_value_of_the_wrong_type_is_refused(
    path: Path, where: Path, found: str, needed: str, hint: str
) -> None:
    """Regression: writing items/x replaced the list with {"x": ...}, name/first the string."""
    with pytest.raises(PathTypeError) as caught:
        setpath(JOHN, path, "J")
    error = caught.value
    assert isinstance(error, SchemaError)
    assert (error.path, error.found, error.needed, error.write) == (where, found, needed, path)
    message = str(error)
    assert message.startswith(f"Cannot write at {'/'.join(map(str, path))}: ")
    assert f"holds {found}, not {needed}; nothing was written." in message
    assert hint in message
    assert "John" not in message


def test_a_document_that_is_not_an_object_is_not_replaced() -> None:
    with pytest.raises(PathTypeError, match="the document root holds a list, not an object"):
        setpath(freeze([1, 2]), ("a",), 1)


@pytest.mark.parametrize("index", [4, 10, -1, "4"])
def test_an_index_outside_the_list_is_refused(index: str | int) -> None:
    with pytest.raises(SchemaError) as caught:
        setpath(JOHN, ("items", index), 9)
    assert caught.value.path == ("items", index)
    message = str(caught.value)
    assert f"index {index} is outside the list at items, which has 3 items" in message
    assert "Write at an index from 0 to 3 (that one appends), or push() to the list" in message


@pytest.mark.parametrize("index", ["²", "1.0", " 1", "-1", "x"])
def test_a_segment_that_only_looks_like_a_number_is_not_an_index(index: str) -> None:
    """Regression: "²".isdigit() is true, and int("²") raised a bare ValueError."""
    with pytest.raises(PathTypeError, match="items holds a list, not an object"):
        setpath(JOHN, ("items", index), 9)
    assert getpath(JOHN, ("items", index)) is None


def test_a_bool_is_not_a_path_segment() -> None:
    with pytest.raises(SchemaError, match="path segment 1 is bool; use a str key or an int"):
        setpath(JOHN, ("items", True), 9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "path", "expected"),
    [
        (None, ("a", "b"), {"a": {"b": "J"}}),
        (JOHN, ("nothing", "first"), {**JOHN, "nothing": {"first": "J"}}),
        (JOHN, ("new", "deep", "er"), {**JOHN, "new": {"deep": {"er": "J"}}}),
        (JOHN, ("items", 3), {**JOHN, "items": [1, 2, 3, "J"]}),
        (JOHN, ("items", "1"), {**JOHN, "items": [1, "J", 3]}),
        (JOHN, ("items", 3, "k"), {**JOHN, "items": [1, 2, 3, {"k": "J"}]}),
        (JOHN, ("name",), {**JOHN, "name": "J"}),
        (JOHN, (), "J"),
    ],
)
def test_missing_keys_and_nulls_become_objects(
    value: JSONValue, path: Path, expected: JSONValue
) -> None:
    assert setpath(value, path, "J") == expected


def test_setpath_shares_what_it_does_not_change() -> None:
    changed = setpath(JOHN, ("name",), "Jo")
    assert isinstance(changed, dict)
    assert changed["items"] is JOHN["items"]
    assert JOHN["name"] == "John"


def test_non_json_is_still_not_json_error() -> None:
    with pytest.raises(NotJSONError, match="at a/b: object is not JSON"):
        freeze({"a": {"b": object()}})


# --- freeze: what is not stored, and where it is -------------------------------------


def nested(levels: int, leaf: JSONValue = 1) -> JSONValue:
    """``levels`` containers inside one another, alternating objects and lists."""
    value: JSONValue = leaf
    for level in range(levels):
        value = {"k": value} if level % 2 else [value]
    return value


def nested_path(levels: int, length: int) -> Path:
    """The first ``length`` segments of the path into ``nested(levels)``."""
    return tuple("k" if (levels - 1 - d) % 2 else 0 for d in range(length))


@pytest.mark.parametrize(
    ("value", "where", "reason"),
    [
        ({"a": {"b": "\ud800"}}, "a/b", "the string holds a lone UTF-16 surrogate"),
        ({"a": ["ok", "x\udfffy"]}, "a/1", "the string holds a lone UTF-16 surrogate"),
        ({"a": "\ud83d\ude00"}, "a", "lone UTF-16 surrogate"),  # a pair, but as two code points
        ({"a": {"\udc80": 1}}, "a", "a key of this object holds a lone UTF-16 surrogate"),
        ({"n": 2**53}, "n", "outside -9007199254740991..9007199254740991 (2**53 - 1)"),
        ({"n": [-(2**53)]}, "n/0", "store it as a string"),
        ({"n": 10**5000}, "n", "outside -9007199254740991..9007199254740991"),
        ({"x": float("inf")}, "x", "inf is not a JSON number"),
        ({"x": [float("-inf")]}, "x/0", "-inf is not a JSON number"),
        ({"x": float("nan")}, "x", "nan is not a JSON number"),
        ({"x": {2: "b"}}, "x", "object keys must be strings, got int"),
    ],
)
def test_freeze_refuses_values_json_readers_cannot_take(
    value: object, where: str, reason: str
) -> None:
    """Regression: lone surrogates passed freeze and failed at encoding, in the storage;
    10**5000 raised a bare ValueError there."""
    with pytest.raises(NotJSONError) as caught:
        freeze(value)
    assert isinstance(caught.value, TypeError)
    assert "/".join(map(str, caught.value.path)) == where
    assert str(caught.value).startswith(f"Invalid value at {where}: ")
    assert reason in str(caught.value)


def test_the_message_never_shows_the_string_or_the_number() -> None:
    for value in ({"token": "s3cr3t-\ud800"}, {"token": 123456789123456789123}):
        with pytest.raises(NotJSONError) as caught:
            freeze(value)
        assert "s3cr3t" not in str(caught.value)
        assert "123456789123456789123" not in str(caught.value)


@pytest.mark.parametrize(
    "value", [2**53 - 1, -(2**53 - 1), 0, True, "😀", "é\u00e9\u0301", {"ключ": "значение"}]
)
def test_freeze_keeps_values_at_the_edge(value: JSONValue) -> None:
    assert freeze(value) == value


def test_freeze_takes_containers_nested_max_depth_deep() -> None:
    assert freeze(nested(MAX_DEPTH)) == nested(MAX_DEPTH)


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 400, 5000])
def test_freeze_refuses_deeper_nesting_with_the_path(levels: int) -> None:
    """Regression: deep values raised RecursionError (from about 500 levels) naming nothing."""
    with pytest.raises(NotJSONError) as caught:
        freeze(nested(levels))
    assert caught.value.path == nested_path(levels, MAX_DEPTH)
    assert f"containers nest more than {MAX_DEPTH} deep here; flatten the value" in str(
        caught.value
    )


def test_freeze_counts_depth_from_the_value_not_its_path() -> None:
    deep_path = tuple(f"p{i}" for i in range(60))
    assert freeze(nested(MAX_DEPTH), deep_path) == nested(MAX_DEPTH)


ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=8)
ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(value=ANYTHING)
def test_what_freeze_accepts_can_be_stored_and_read_back(value: object) -> None:
    """Whatever passes freeze encodes as UTF-8 JSON and reads back the same."""
    try:
        frozen = freeze(value)
    except NotJSONError:
        return
    text = dumps(frozen)
    text.encode("utf-8")
    assert same(loads(text), frozen)
