"""Ed25519 identities: generating, deriving, signing, and PKCS#8 key files."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shlex
import stat
from pathlib import Path
from typing import NoReturn

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from charmspace.errors import IdentityError, InsecureKeyFileError
from charmspace.identity.did import did_from_public_key, parse_did
from charmspace.types import DID

__all__ = ["Identity", "verify"]

_SEED_LENGTH = 32
_PEM_LABEL = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)
_NOT_OWNER = 0o077  # group and other permission bits


class Identity:
    """An Ed25519 key pair, named by its ``did:key`` DID.

    Immutable: every way of making one (``generate``, ``from_seed``,
    ``from_passphrase``, ``derive``, ``from_pem``, ``load``) returns a new
    identity. Two identities are equal when they have the same DID. ``repr``
    shows only the DID, so an identity can be logged without leaking its key.
    """

    __slots__ = ("_did", "_private_key", "_public_key")

    _private_key: Ed25519PrivateKey
    _public_key: bytes
    _did: DID

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise IdentityError(
                f"An identity needs an Ed25519 private key, not {type(private_key).__name__}."
            )
        public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        object.__setattr__(self, "_private_key", private_key)
        object.__setattr__(self, "_public_key", public_key)
        object.__setattr__(self, "_did", did_from_public_key(public_key))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Identity is immutable; cannot set {name!r}.")

    # --- making one ----------------------------------------------------------

    @classmethod
    def generate(cls) -> Identity:
        """A new random identity."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity whose Ed25519 private key is this 32-byte seed."""
        if not isinstance(seed, bytes | bytearray):
            raise IdentityError(f"A seed must be bytes, not {type(seed).__name__}.")
        if len(seed) != _SEED_LENGTH:
            raise IdentityError(
                f"A seed must be exactly {_SEED_LENGTH} bytes, not {len(seed)}. "
                "Use Identity.from_passphrase() to turn text into an identity."
            )
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @classmethod
    def from_passphrase(cls, text: str) -> Identity:
        """The identity whose seed is the SHA-256 of the UTF-8 passphrase.

        Anyone who knows the passphrase has the key, so this suits test and demo
        identities; the derivation matches the reference system's.
        """
        if not isinstance(text, str):
            raise IdentityError(f"A passphrase must be a string, not {type(text).__name__}.")
        return cls.from_seed(hashlib.sha256(text.encode("utf-8")).digest())

    def derive(self, name: str) -> Identity:
        """A named identity (such as a space) that only this identity can re-create.

        The seed is the SHA-256 of this identity's signature over the UTF-8 name:
        Ed25519 signatures are deterministic, so the result is stable, and nobody
        without this key can compute it.
        """
        if not isinstance(name, str):
            raise IdentityError(
                f"A name to derive from must be a string, not {type(name).__name__}."
            )
        return Identity.from_seed(hashlib.sha256(self.sign(name.encode("utf-8"))).digest())

    # --- using one ------------------------------------------------------------

    @property
    def did(self) -> DID:
        """The ``did:key:z6Mk…`` DID naming this identity."""
        return self._did

    @property
    def public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key."""
        return self._public_key

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._private_key.sign(data)

    def __repr__(self) -> str:
        return f"Identity(did={self._did!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Identity):
            return NotImplemented
        return self._did == other._did

    def __hash__(self) -> int:
        return hash(self._did)

    # --- key files ------------------------------------------------------------

    def to_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``)."""
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, data: bytes | str) -> Identity:
        """The identity in PKCS#8 PEM text holding an Ed25519 private key."""
        return cls(_read_pem(data, "the PEM data"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """The identity in a PEM key file, such as one written by :meth:`save`.

        The file must hold exactly one PEM block and, on POSIX systems, be
        private to its owner (no group or other permission bits, as ssh
        requires): otherwise :class:`~charmspace.errors.InsecureKeyFileError`
        says which ``chmod`` to run. The mode is read from the open file, so
        the file checked is the file read.
        """
        path = Path(path)
        try:
            with path.open("rb") as file:
                mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
                data = file.read()
        except FileNotFoundError:
            raise IdentityError(
                f"Key file {path} does not exist. Create one with `charmspace id new --out {path}`."
            ) from None
        except IsADirectoryError:
            raise IdentityError(f"Key file {path} is a directory, not a key file.") from None
        except OSError as error:
            raise IdentityError(f"Key file {path} cannot be read: {error.strerror}.") from None
        key = _read_pem(data, f"key file {path}")
        if os.name == "posix" and mode & _NOT_OWNER:
            raise InsecureKeyFileError(str(path), mode)
        return cls(key)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the key to a new file that only its owner can read (mode 0600).

        Refuses to replace an existing file unless ``overwrite`` is true, because
        a replaced key is lost along with everything only it could open. The file
        is created with mode 0600 from the start, so the key is never readable by
        others, not even briefly; with ``overwrite`` a temporary file is written
        and renamed over the old one, so a crash leaves the old key or the new.
        """
        path = Path(path)
        if path.is_dir():  # else "already exists", and --force would not help either
            raise IdentityError(
                f"Cannot write key file {path}: it is a directory. Name a file in it, "
                f"e.g. {path / 'identity.pem'}."
            )
        try:
            if overwrite:
                temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
                _write_private(temporary, self.to_pem())
                try:
                    os.replace(temporary, path)
                except BaseException:
                    temporary.unlink(missing_ok=True)
                    raise
            else:
                _write_private(path, self.to_pem())
        except FileExistsError:
            raise IdentityError(
                f"Key file {path} already exists; not overwriting it. "
                "Choose another path, or overwrite deliberately (--force, overwrite=True)."
            ) from None
        except FileNotFoundError:
            raise IdentityError(
                f"Cannot write key file {path}: directory {path.parent} does not exist. "
                f"Create it first (`mkdir -p {shlex.quote(str(path.parent))}`) or choose "
                "another path."
            ) from None
        except OSError as error:
            raise IdentityError(f"Cannot write key file {path}: {error.strerror}.") from None


def verify(did: DID, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the signature of ``data`` by the identity ``did``.

    A wrong signature is an answer (False); a malformed DID is a mistake
    (:class:`IdentityError`).
    """
    public_key = Ed25519PublicKey.from_public_bytes(parse_did(did))
    try:
        public_key.verify(bytes(signature), bytes(data))
    except InvalidSignature:
        return False
    return True


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` (it must not exist) with mode 0600 and write ``data`` to it."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits; never added any
        with os.fdopen(fd, "wb") as file:
            fd = -1
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        if fd != -1:
            os.close(fd)
        path.unlink(missing_ok=True)
        raise


def _read_pem(data: bytes | str, source: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM ``data``, or an error naming ``source`` and the problem."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    labels = [m.group(1).decode("ascii") for m in _PEM_LABEL.finditer(raw)]
    if not labels:
        _unusable(source, "it is not PEM (no -----BEGIN PRIVATE KEY----- line)")
    if len(labels) > 1:
        # Which block would be used is up to the parser; a key chosen by accident
        # is the wrong identity acting, so refuse rather than pick one.
        _unusable(
            source,
            f"it holds {len(labels)} PEM blocks ({', '.join(labels)}), but a key file holds "
            "exactly one key; keep the one you mean in a file of its own",
        )
    label = labels[0]
    if "PRIVATE KEY" not in label:
        _unusable(source, f"it holds a {label!r} PEM block, not a private key")
    block = _PEM_BLOCK.search(raw)
    if block is not None and (raw[: block.start()].strip() or raw[block.end() :].strip()):
        _unusable(
            source,
            "it holds text outside its PEM block; remove everything before "
            f"-----BEGIN {label}----- and after -----END {label}-----",
        )
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except TypeError:
        _unusable(source, "the private key is encrypted; charmspace reads unencrypted keys")
    except (ValueError, UnsupportedAlgorithm):
        if label != "PRIVATE KEY":
            _unusable(source, f"it holds a {label!r} PEM block, which charmspace cannot read")
        _unusable(source, "its PRIVATE KEY block is damaged or not valid PKCS#8")
    if not isinstance(key, Ed25519PrivateKey):
        _unusable(source, f"it holds {_describe_key(key)}, not an Ed25519 key")
    return key


def _unusable(source: str, problem: str) -> NoReturn:
    raise IdentityError(
        f"Cannot use {source} as an identity: {problem}. An identity is an Ed25519 key "
        "in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----); create one with `charmspace id new`."
    )


def _describe_key(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"an RSA-{key.key_size} key"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"an elliptic-curve key on {key.curve.name}"
    if isinstance(key, dsa.DSAPrivateKey):
        return "a DSA key"
    if isinstance(key, ed448.Ed448PrivateKey):
        return "an Ed448 key"
    if isinstance(key, x25519.X25519PrivateKey | x448.X448PrivateKey):
        return "a key-agreement (X25519/X448) key"
    return f"a {type(key).__name__}"
