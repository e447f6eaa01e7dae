"""``did:key`` DIDs for Ed25519 keys, and the base58btc encoding they use.

A DID is ``did:key:z`` + base58btc(``0xed 0x01`` + 32-byte public key): ``z`` is
the multibase prefix for base58btc and ``0xed 0x01`` the multicodec varint for an
Ed25519 public key, which is why every valid DID starts ``did:key:z6Mk``.
"""

from __future__ import annotations

from typing import NoReturn

from charmspace.errors import IdentityError
from charmspace.types import DID

__all__ = ["b58decode", "b58encode", "did_from_public_key", "is_did", "parse_did"]

_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: index for index, char in enumerate(_ALPHABET)}

_PREFIX = "did:key:"
_ED25519_PUB = 0xED
_ED25519_HEADER = bytes([0xED, 0x01])
_KEY_LENGTH = 32
_MAX_LENGTH = 128

# Only to name what was found when a DID holds some other kind of key.
_KNOWN_CODECS = {
    0xE7: "a secp256k1 key",
    0xEB: "a BLS12-381 G2 key",
    0xEC: "an X25519 key",
    0x1200: "a P-256 key",
    0x1201: "a P-384 key",
    0x1202: "a P-521 key",
    0x1205: "an RSA key",
}

_HINT = (
    "A valid DID looks like did:key:z6Mk… "
    "(did:key:z + base58btc of 0xed 0x01 and a 32-byte Ed25519 public key)"
)


def b58encode(data: bytes) -> str:
    """Encode bytes as base58btc (Bitcoin alphabet); each leading zero byte becomes ``1``."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Decode base58btc text; raises :class:`IdentityError` naming the first bad character."""
    number = 0
    for position, char in enumerate(text):
        if char not in _INDEX:
            raise IdentityError(
                f"{char!r} at position {position} is not a base58btc character "
                "(0, O, I and l are never used)"
            )
        number = number * 58 + _INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * zeros + body


def did_from_public_key(public_key: bytes) -> DID:
    """The ``did:key`` DID of a 32-byte Ed25519 public key."""
    if len(public_key) != _KEY_LENGTH:
        raise IdentityError(f"An Ed25519 public key is {_KEY_LENGTH} bytes, not {len(public_key)}.")
    return f"{_PREFIX}z{b58encode(_ED25519_HEADER + bytes(public_key))}"


def parse_did(text: DID) -> bytes:
    """The 32-byte Ed25519 public key a DID names.

    Raises :class:`IdentityError` saying what is wrong with the DID: not a string,
    no ``did:key:`` prefix, a multibase other than ``z``, a character outside
    base58btc, a key type other than Ed25519, or the wrong length.
    """
    if not isinstance(text, str):
        raise IdentityError(f"A DID must be a string, not {type(text).__name__}. {_HINT}.")
    if not text.startswith(_PREFIX):
        _invalid(text, "it does not start with did:key:")
    encoded = text[len(_PREFIX) :]
    if not encoded:
        _invalid(text, "nothing follows did:key:")
    if encoded[0] != "z":
        _invalid(text, f"its multibase prefix is {encoded[0]!r}, but only 'z' (base58btc) is read")
    # A valid DID is 56 characters; refuse long input before the quadratic decode.
    if len(text) > _MAX_LENGTH:
        _invalid(text, f"it is {len(text)} characters long, but an Ed25519 DID is 56")
    start = len(_PREFIX) + 1
    for position, char in enumerate(text[start:], start):
        if char not in _INDEX:
            _invalid(text, f"{char!r} at position {position} is not a base58btc character")
    decoded = b58decode(text[start:])
    codec, header_length = _read_varint(decoded)
    if codec != _ED25519_PUB:
        _invalid(text, f"it is not an Ed25519 key: {_describe_codec(codec)}")
    key = decoded[header_length:]
    if len(key) != _KEY_LENGTH:
        _invalid(text, f"its key is {len(key)} bytes long, but an Ed25519 key is {_KEY_LENGTH}")
    return key


def is_did(text: object) -> bool:
    """Whether ``text`` is a valid Ed25519 ``did:key`` DID."""
    if not isinstance(text, str):
        return False
    try:
        parse_did(text)
    except IdentityError:
        return False
    return True


def _invalid(text: str, problem: str) -> NoReturn:
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise IdentityError(f"Invalid DID {shown!r}: {problem}. {_HINT}.")


def _read_varint(data: bytes) -> tuple[int | None, int]:
    """An unsigned LEB128 varint (the multicodec prefix) and its length; None if truncated."""
    value = 0
    for index, byte in enumerate(data[:9]):
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            return value, index + 1
    return None, 0


def _describe_codec(codec: int | None) -> str:
    if codec is None:
        return "it has no complete multicodec prefix"
    name = _KNOWN_CODECS.get(codec)
    found = f"multicodec 0x{codec:x}"
    return f"found {name} ({found})" if name else f"found {found}"
