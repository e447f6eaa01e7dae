"""Document ids derived from their cause."""

from __future__ import annotations

import re

from charmspace.storage import entity_id
from charmspace.types import JSONValue


def test_the_same_cause_gives_the_same_id() -> None:
    cause: JSONValue = {"charm": "counter", "node": 3, "key": ["state", "count"]}
    assert entity_id(cause) == entity_id({"charm": "counter", "node": 3, "key": ["state", "count"]})


def test_key_order_does_not_matter() -> None:
    assert entity_id({"a": 1, "b": 2}) == entity_id({"b": 2, "a": 1})


def test_an_id_is_of_and_lowercase_base32_of_a_sha256() -> None:
    assert re.fullmatch(r"of:[a-z2-7]{52}", entity_id("anything"))


def test_different_causes_give_different_ids() -> None:
    causes: list[JSONValue] = [
        {"charm": "counter", "node": 3},
        {"charm": "counter", "node": 4},
        "3",
        3,
        [3],
        None,
    ]
    assert len({entity_id(c) for c in causes}) == len(causes)


def test_a_known_cause_has_a_known_id() -> None:
    """Pinned: changing the derivation would orphan every stored document."""
    assert entity_id("hello") == "of:lktwflryh65xe6xty6rw2skauw4micuysrjnemcpzfmp6pzvjz5a"
    assert (
        entity_id({"key": ["count"], "charm": "counter"})
        == "of:7x424dykcjqxrkq4nypojr74hucn5dhqvhtah3cus3fcbtlatktq"
    )
