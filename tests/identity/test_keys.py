from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from charmspace.errors import IdentityError, InsecureKeyFileError
from charmspace.identity import Identity, parse_did, verify

REFERENCE_PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEICWSvx4QOW+mogjWSsjInQaPpmjErsDBqf2ZOoK+Y4IO\n"
    "-----END PRIVATE KEY-----\n"
)


@pytest.fixture
def alice() -> Identity:
    return Identity.from_passphrase("alice")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets group and others read new files, as on many desktops."""
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pkcs8(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- the reference system's test vectors ------------------------------------------


def test_passphrase_vector() -> None:
    assert (
        Identity.from_passphrase("common user").did
        == "did:key:z6Mkj5HyygpAVo2baUcx7kwTRoUbbBmk5egUQPHnV8arQ3SY"
    )


def test_derive_home_vector() -> None:
    assert (
        Identity.from_passphrase("common user").derive("home").did
        == "did:key:z6MkhvnQ6Sva4xmYQSi5otYCGo7z6GUNAF3ecuCZ1zLTUhiR"
    )


def test_derive_test_vector() -> None:
    assert (
        Identity.from_passphrase("common user").derive("test").did
        == "did:key:z6MkmPsMDaye9nJFoZDfporjgW7koavbieMAKuqgro5nw5LH"
    )


def test_pkcs8_pem_vector() -> None:
    assert (
        Identity.from_pem(REFERENCE_PEM).did
        == "did:key:z6MkspRA3aXp7T1GmTo92Q33EV33oJSNDzaoKkFUV5WkW9NC"
    )


# --- making identities -----------------------------------------------------------


def test_generate_makes_distinct_ed25519_identities() -> None:
    first, second = Identity.generate(), Identity.generate()
    assert first.did.startswith("did:key:z6Mk")
    assert first != second


def test_from_seed_is_deterministic() -> None:
    seed = bytes(range(32))
    assert Identity.from_seed(seed) == Identity.from_seed(bytes(range(32)))


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_from_seed_needs_exactly_32_bytes(length: int) -> None:
    with pytest.raises(IdentityError, match=f"exactly 32 bytes, not {length}"):
        Identity.from_seed(b"\1" * length)


def test_from_seed_refuses_text() -> None:
    with pytest.raises(IdentityError, match="must be bytes, not str"):
        Identity.from_seed("a" * 32)  # type: ignore[arg-type]


def test_from_passphrase_refuses_bytes() -> None:
    with pytest.raises(IdentityError, match="must be a string, not bytes"):
        Identity.from_passphrase(b"common user")  # type: ignore[arg-type]


def test_derive_is_stable_and_name_specific(alice: Identity) -> None:
    assert alice.derive("home") == alice.derive("home")
    assert alice.derive("home") != alice.derive("work")
    assert alice.derive("home") != Identity.from_passphrase("bob").derive("home")


def test_constructor_refuses_other_key_types() -> None:
    with pytest.raises(IdentityError, match="needs an Ed25519 private key"):
        Identity(ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]


def test_public_key_is_what_the_did_names(alice: Identity) -> None:
    assert len(alice.public_key) == 32
    assert parse_did(alice.did) == alice.public_key


def test_identity_is_immutable_and_hashable(alice: Identity) -> None:
    with pytest.raises(AttributeError):
        alice._did = "did:key:z6Mkother"
    assert {alice, Identity.from_passphrase("alice")} == {alice}


def test_repr_shows_the_did_and_no_key_material(alice: Identity) -> None:
    seed = bytes.fromhex("".join(f"{b:02x}" for b in range(32)))
    identity = Identity.from_seed(seed)
    body = identity.to_pem().decode().splitlines()[1]
    for text in (repr(identity), str(identity)):
        assert text == f"Identity(did={identity.did!r})"
        assert seed.hex() not in text
        assert body not in text
        assert base64.b64encode(seed).decode()[:16] not in text


# --- signing ------------------------------------------------------------------


def test_sign_then_verify(alice: Identity) -> None:
    signature = alice.sign(b"hello")
    assert len(signature) == 64
    assert verify(alice.did, b"hello", signature)


def test_verify_rejects_tampered_data(alice: Identity) -> None:
    assert not verify(alice.did, b"hellO", alice.sign(b"hello"))


def test_verify_rejects_tampered_signature(alice: Identity) -> None:
    signature = bytearray(alice.sign(b"hello"))
    signature[0] ^= 1
    assert not verify(alice.did, b"hello", bytes(signature))
    assert not verify(alice.did, b"hello", bytes(signature[:10]))


def test_verify_rejects_another_identitys_did(alice: Identity) -> None:
    bob = Identity.from_passphrase("bob")
    assert not verify(bob.did, b"hello", alice.sign(b"hello"))


def test_verify_refuses_a_malformed_did(alice: Identity) -> None:
    with pytest.raises(IdentityError, match="does not start with did:key:"):
        verify("did:web:alice.example", b"hello", alice.sign(b"hello"))


# --- PEM and key files ---------------------------------------------------------


def test_to_pem_is_unencrypted_pkcs8(alice: Identity) -> None:
    pem = alice.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert Identity.from_pem(pem) == alice
    assert Identity.from_pem(pem.decode()) == alice


def test_save_then_load(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "alice.pem"
    alice.save(path)
    assert Identity.load(path) == alice
    assert Identity.load(str(path)) == alice


def test_saved_key_file_is_mode_0600(tmp_path: Path, alice: Identity, open_umask: None) -> None:
    path = tmp_path / "alice.pem"
    alice.save(path)
    assert mode(path) == 0o600


def test_save_refuses_to_overwrite(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "me.pem"
    path.write_text("precious")
    with pytest.raises(IdentityError, match=f"{path} already exists; not overwriting"):
        alice.save(path)
    assert path.read_text() == "precious"


@pytest.mark.parametrize("overwrite", [False, True])
def test_save_to_a_directory_says_to_name_a_file_in_it(
    tmp_path: Path, alice: Identity, overwrite: bool
) -> None:
    """Regression: `charmspace id new --out DIR` said the "key file" already exists and
    suggested --force, which could not help."""
    with pytest.raises(IdentityError) as refused:
        alice.save(tmp_path, overwrite=overwrite)
    assert str(refused.value) == (
        f"Cannot write key file {tmp_path}: it is a directory. Name a file in it, "
        f"e.g. {tmp_path / 'identity.pem'}."
    )
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_missing_directory_says_how_to_make_it(tmp_path: Path, alice: Identity) -> None:
    missing = tmp_path / "keys"
    with pytest.raises(IdentityError, match=f"Create it first \\(`mkdir -p {missing}`\\)"):
        alice.save(missing / "me.pem")


def test_save_overwrites_when_asked(tmp_path: Path, alice: Identity, open_umask: None) -> None:
    path = tmp_path / "me.pem"
    path.write_text("old")
    path.chmod(0o644)
    alice.save(path, overwrite=True)
    assert Identity.load(path) == alice
    assert mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.pem"]


def test_save_into_a_missing_directory(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "nowhere" / "me.pem"
    with pytest.raises(IdentityError, match=r"directory .*nowhere does not exist"):
        alice.save(path)


def test_load_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    path = tmp_path / "me.pem"
    with pytest.raises(IdentityError) as caught:
        Identity.load(path)
    message = str(caught.value)
    assert f"Key file {path} does not exist" in message
    assert "charmspace id new" in message


def test_load_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="is a directory"):
        Identity.load(tmp_path)


def load_error(tmp_path: Path, content: bytes) -> str:
    path = tmp_path / "key.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(IdentityError) as caught:
        Identity.load(path)
    message = str(caught.value)
    assert f"key file {path}" in message
    return message


def test_load_a_file_that_is_not_pem(tmp_path: Path) -> None:
    assert "it is not PEM" in load_error(tmp_path, b"just some text\n")


def test_load_a_public_key(tmp_path: Path, alice: Identity) -> None:
    public = Ed25519PrivateKey.generate().public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert "'PUBLIC KEY' PEM block, not a private key" in load_error(tmp_path, pem)


def test_load_an_rsa_key(tmp_path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    assert "it holds an RSA-1024 key, not an Ed25519 key" in load_error(tmp_path, pkcs8(key))


def test_load_an_elliptic_curve_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    message = load_error(tmp_path, pkcs8(key))
    assert "elliptic-curve key on secp256r1, not an Ed25519 key" in message


def test_load_an_encrypted_key(tmp_path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    assert "encrypted" in load_error(tmp_path, pem)


def test_load_a_damaged_key(tmp_path: Path) -> None:
    damaged = REFERENCE_PEM.replace("MC4CAQAw", "MC4CAQAx").encode()
    assert "damaged or not valid PKCS#8" in load_error(tmp_path, damaged)


def test_load_an_openssh_key(tmp_path: Path) -> None:
    pem = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    assert "'OPENSSH PRIVATE KEY' PEM block" in load_error(tmp_path, pem)


def test_from_pem_errors_name_the_problem() -> None:
    with pytest.raises(
        IdentityError, match="Cannot use the PEM data as an identity: it is not PEM"
    ):
        Identity.from_pem("hello")


# --- key files others could read, and files that hold more than one key ------------


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o610], ids=oct)
def test_load_refuses_a_key_file_others_can_read_or_write(
    tmp_path: Path, alice: Identity, loose: int
) -> None:
    """Regression: a key file readable or writable by group or others loaded silently."""
    path = tmp_path / "alice.pem"
    alice.save(path)
    path.chmod(loose)
    with pytest.raises(InsecureKeyFileError) as caught:
        Identity.load(path)
    error = caught.value
    assert isinstance(error, IdentityError)
    assert (error.path, error.mode) == (str(path), loose)
    assert f"Run `chmod 600 {path}`" in str(error)
    assert f"mode {loose:04o}" in str(error)


def test_the_chmod_in_the_message_makes_the_key_usable(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "my keys" / "alice.pem"
    path.parent.mkdir()
    alice.save(path)
    path.chmod(0o644)
    with pytest.raises(InsecureKeyFileError, match=r"chmod 600 '.*/my keys/alice\.pem'"):
        Identity.load(path)
    path.chmod(0o600)
    assert Identity.load(path) == alice


@pytest.mark.parametrize("private", [0o600, 0o400, 0o700], ids=oct)
def test_load_accepts_a_key_file_only_its_owner_can_use(
    tmp_path: Path, alice: Identity, private: int
) -> None:
    path = tmp_path / "alice.pem"
    alice.save(path)
    path.chmod(private)
    assert Identity.load(path) == alice


def test_load_refuses_a_file_with_two_keys(tmp_path: Path, alice: Identity) -> None:
    """Regression: a PEM file with two keys silently became the identity of the first."""
    bob = Identity.from_passphrase("bob")
    message = load_error(tmp_path, alice.to_pem() + bob.to_pem())
    assert "2 PEM blocks (PRIVATE KEY, PRIVATE KEY)" in message
    assert "keep the one you mean in a file of its own" in message


def test_load_refuses_a_key_next_to_a_certificate(tmp_path: Path, alice: Identity) -> None:
    certificate = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    message = load_error(tmp_path, certificate + alice.to_pem())
    assert "2 PEM blocks (CERTIFICATE, PRIVATE KEY)" in message


@pytest.mark.parametrize(
    "wrap",
    [
        lambda pem: pem + b"trailing garbage\n",
        lambda pem: pem + b"-----END PRIVATE KEY-----\n",
        lambda pem: pem + pem.splitlines(keepends=True)[1],
        lambda pem: b"Bag Attributes\n" + pem,
    ],
    ids=["garbage", "a second END line", "half of another key", "text before"],
)
def test_load_refuses_text_outside_the_pem_block(
    tmp_path: Path, alice: Identity, wrap: Callable[[bytes], bytes]
) -> None:
    """Regression: text after the key (half of another key, say) was silently ignored."""
    message = load_error(tmp_path, wrap(alice.to_pem()))
    assert "it holds text outside its PEM block" in message
    assert "remove everything before -----BEGIN PRIVATE KEY-----" in message


def test_whitespace_around_the_pem_block_is_fine(tmp_path: Path, alice: Identity) -> None:
    path = tmp_path / "alice.pem"
    path.write_bytes(b"\n" + alice.to_pem() + b"\n\n")
    path.chmod(0o600)
    assert Identity.load(path) == alice
    assert Identity.from_pem(alice.to_pem().decode().replace("\n", "\r\n")) == alice


def test_from_pem_refuses_two_keys(alice: Identity) -> None:
    with pytest.raises(IdentityError, match="the PEM data as an identity: it holds 2 PEM blocks"):
        Identity.from_pem(alice.to_pem() * 2)
