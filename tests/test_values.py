"""JSON values: freezing (what is refused, and where), paths into values."""

from __future__ import annotations

import pytest

from charmspace.errors import NotJSONError, PathTypeError, SchemaError
from charmspace.types import JSONValue, Path
from charmspace.values import freeze, getpath, setpath

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
