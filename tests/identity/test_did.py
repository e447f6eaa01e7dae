from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charmspace.errors import IdentityError
from charmspace.identity import did_from_public_key, is_did, parse_did
from charmspace.identity.did import b58decode, b58encode

COMMON_USER = "did:key:z6Mkj5HyygpAVo2baUcx7kwTRoUbbBmk5egUQPHnV8arQ3SY"
KEY = bytes(range(32))


def did_of(payload: bytes) -> str:
    return "did:key:z" + b58encode(payload)


# --- base58btc ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", ""),
        (b"\0", "1"),
        (b"\0\0\x01", "112"),
        (b"hello world", "StV1DL6CwTryKyV"),
        (b"\xff", "5Q"),
    ],
)
def test_base58_known_values(data: bytes, text: str) -> None:
    assert b58encode(data) == text
    assert b58decode(text) == data


@given(zeros=st.integers(min_value=0, max_value=8), data=st.binary(max_size=64))
def test_base58_round_trips_including_leading_zero_bytes(zeros: int, data: bytes) -> None:
    raw = b"\0" * zeros + data
    assert b58decode(b58encode(raw)) == raw


@pytest.mark.parametrize("char", ["0", "O", "I", "l", "+", "é"])
def test_base58_rejects_characters_outside_the_alphabet(char: str) -> None:
    with pytest.raises(IdentityError, match="position 2 is not a base58btc character"):
        b58decode("ab" + char)


# --- DIDs ------------------------------------------------------------------------


def test_did_round_trips_through_parse() -> None:
    did = did_from_public_key(KEY)
    assert did.startswith("did:key:z6Mk")
    assert parse_did(did) == KEY
    assert is_did(did)


@given(key=st.binary(min_size=32, max_size=32))
def test_every_ed25519_did_starts_z6mk_and_parses_back(key: bytes) -> None:
    did = did_from_public_key(key)
    assert did.startswith("did:key:z6Mk")
    assert parse_did(did) == key


def test_parses_the_reference_did() -> None:
    assert len(parse_did(COMMON_USER)) == 32


def test_did_from_public_key_rejects_wrong_length() -> None:
    with pytest.raises(IdentityError, match="32 bytes, not 31"):
        did_from_public_key(KEY[:31])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("did:web:example.com", "does not start with did:key:"),
        ("z6Mkj5HyygpAVo2baUcx7kwTRoUbbBmk5egUQPHnV8arQ3SY", "does not start with did:key:"),
        ("", "does not start with did:key:"),
        ("did:key:", "nothing follows did:key:"),
        ("did:key:f" + (b"\xed\x01" + KEY).hex(), "multibase prefix is 'f'"),
        ("did:key:" + COMMON_USER[9:], "multibase prefix is '6'"),
        (COMMON_USER[:20] + "0" + COMMON_USER[21:], "'0' at position 20 is not a base58btc"),
        (COMMON_USER[:20] + "l" + COMMON_USER[21:], "'l' at position 20 is not a base58btc"),
        (did_of(b"\xe7\x01" + b"\x02" + KEY), "not an Ed25519 key: found a secp256k1 key"),
        (
            did_of(b"\x80\x24" + b"\x02" + KEY),
            r"not an Ed25519 key: found a P-256 key \(multicodec",
        ),
        (did_of(b"\xec\x01" + KEY), "not an Ed25519 key: found an X25519 key"),
        (did_of(b"\x55" + KEY), "not an Ed25519 key: found multicodec 0x55"),
        (did_of(b"\xed"), "no complete multicodec prefix"),
        ("did:key:z", "no complete multicodec prefix"),
        (did_of(b"\xed\x01" + KEY[:31]), "its key is 31 bytes long, but an Ed25519 key is 32"),
        (did_of(b"\xed\x01" + KEY + b"\0"), "its key is 33 bytes long"),
    ],
)
def test_malformed_dids_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(IdentityError, match=problem) as caught:
        parse_did(text)
    assert "did:key:z6Mk" in str(caught.value)
    assert not is_did(text)


@pytest.mark.parametrize("value", [None, 42, b"did:key:z6Mk", ["did:key:z6Mk"]])
def test_non_strings_are_not_dids(value: object) -> None:
    with pytest.raises(IdentityError, match=f"must be a string, not {type(value).__name__}"):
        parse_did(value)  # type: ignore[arg-type]
    assert not is_did(value)


def test_long_input_is_refused_quickly_and_shortened_in_the_message() -> None:
    with pytest.raises(IdentityError) as caught:
        parse_did("did:key:z" + "x" * 1_000_000)
    assert "it is 1000009 characters long" in str(caught.value)
    assert len(str(caught.value)) < 400
