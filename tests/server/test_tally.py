"""The tally behind 'the biggest holder pays': counts, the most, and who is named on a tie."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from charmspace.server.tally import Tally


def test_counts_the_total_and_the_biggest_holder() -> None:
    tally: Tally[str] = Tally()
    assert (tally.most, tally.biggest(), tally.total, len(tally)) == (0, None, 0, 0)
    for holder in ["a", "b", "b", "c", "b"]:
        tally.add(holder)
    assert (tally["a"], tally["b"], tally["c"], tally["never"]) == (1, 3, 1, 0)
    assert (tally.most, tally.biggest(), tally.total, len(tally)) == (3, "b", 5, 3)
    assert tally.remove("b") == 2
    assert tally.remove("b") == 1
    assert (tally.most, tally.biggest()) == (1, "a")  # a reached one first
    for holder in ["a", "b", "c"]:
        tally.remove(holder)
    assert (tally.most, tally.biggest(), tally.total, len(tally)) == (0, None, 0, 0)


def test_on_a_tie_the_first_to_reach_the_count_is_named() -> None:
    tally: Tally[str] = Tally()
    for holder in ["old", "new"]:
        tally.add(holder)
    assert tally.biggest() == "old"
    tally.add("new")
    tally.add("old")  # both hold two: new got there first
    assert tally.biggest() == "new"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from("abcd")), max_size=60))
def test_the_most_is_always_the_largest_count(steps: list[tuple[bool, str]]) -> None:
    tally: Tally[str] = Tally()
    counts = dict.fromkeys("abcd", 0)
    for adding, holder in steps:
        if adding:
            tally.add(holder)
            counts[holder] += 1
        elif counts[holder]:
            tally.remove(holder)
            counts[holder] -= 1
        assert tally.most == max(counts.values())
        assert tally.total == sum(counts.values())
        biggest = tally.biggest()
        assert (biggest is None) == (tally.most == 0)
        assert biggest is None or counts[biggest] == tally.most
