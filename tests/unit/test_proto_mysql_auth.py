"""Auth plugin cryptography against pymysql, MariaDB-computed values and RFC 8032."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from pymysql import _auth as pymysql_auth  # type: ignore[import-untyped,unused-ignore]

from wardgate.core.errors import TargetUnavailableError
from wardgate.proto.mysql import auth

NONCE = b"3&a98LTC4x$DigGmoe/W"  # the 20-byte nonce of a real MariaDB greeting


def test_native_password_known_value() -> None:
    # computed with pymysql's scramble_native_password(b"pw1", NONCE) and pinned
    expected = "85f914a8f2d271de1b32ee9ce56372fab4f8b8ba"
    assert auth.scramble_native_password(b"pw1", NONCE).hex() == expected
    # the NUL MariaDB appends to the nonce in an auth switch does not change the answer
    assert auth.scramble_native_password(b"pw1", NONCE + b"\x00").hex() == expected
    assert auth.scramble_native_password(b"", NONCE) == b""


def test_caching_sha2_known_value() -> None:
    # computed with pymysql's scramble_caching_sha2(b"pw1", NONCE) and pinned
    assert auth.scramble_caching_sha2(b"pw1", NONCE).hex() == (
        "c69e61c53a7ed0c220d03d8a26d54dae989455c9ab0d3db5fabea41b621450e6"
    )


@given(st.binary(min_size=1, max_size=64), st.binary(min_size=20, max_size=20))
def test_native_password_matches_pymysql(password: bytes, nonce: bytes) -> None:
    assert auth.scramble_native_password(password, nonce) == (
        pymysql_auth.scramble_native_password(password, nonce + b"\x00")
    )


def test_native_password_hash_matches_mariadb_password_function() -> None:
    # SELECT PASSWORD('pw1') on MariaDB 10.11
    assert auth.native_password_hash(b"pw1") == "*2B602296A79E0A8784ACC5C88D92E46588CCA3C3"


def test_server_side_native_check() -> None:
    stage2 = hashlib.sha1(hashlib.sha1(b"pw1").digest()).digest()
    good = auth.scramble_native_password(b"pw1", NONCE)
    assert auth.check_native_password(good, NONCE, stage2)
    assert not auth.check_native_password(auth.scramble_native_password(b"pw2", NONCE), NONCE,
                                          stage2)
    assert not auth.check_native_password(b"short", NONCE, stage2)


@given(st.binary(min_size=1, max_size=64), st.binary(min_size=20, max_size=20))
def test_caching_sha2_matches_pymysql(password: bytes, nonce: bytes) -> None:
    assert auth.scramble_caching_sha2(password, nonce) == pymysql_auth.scramble_caching_sha2(
        password, nonce
    )


def test_caching_sha2_empty_password_sends_nothing() -> None:
    assert auth.scramble_caching_sha2(b"", NONCE) == b""


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _server_decrypt(key: rsa.RSAPrivateKey, blob: bytes, nonce: bytes) -> bytes:
    sha1 = hashes.SHA1()
    plain = key.decrypt(blob, padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1,
                                           label=None))
    return bytes(b ^ nonce[i % len(nonce)] for i, b in enumerate(plain))


def test_rsa_full_path_decrypts_like_the_server_does(rsa_key: rsa.RSAPrivateKey) -> None:
    blob = auth.encrypt_password_rsa(b"s3cret", NONCE, _pem(rsa_key))
    assert _server_decrypt(rsa_key, blob, NONCE) == b"s3cret\x00"
    # pymysql's encoding decrypts to the same plaintext (OAEP is randomised, bytes differ)
    theirs = pymysql_auth.sha2_rsa_encrypt(b"s3cret", NONCE, _pem(rsa_key))
    assert _server_decrypt(rsa_key, theirs, NONCE) == b"s3cret\x00"


def test_rsa_with_a_bad_key_says_what_to_do() -> None:
    with pytest.raises(TargetUnavailableError, match="over TLS"):
        auth.encrypt_password_rsa(b"pw", NONCE, b"-----BEGIN PUBLIC KEY-----\nnope\n")


def test_ed25519_public_key_matches_mariadb() -> None:
    # mysql.global_priv authentication_string after
    # CREATE USER ... IDENTIFIED VIA ed25519 USING PASSWORD('pw2') on MariaDB 10.11
    stored = "iGRouygp5VwPhO1Nw3XHv2nRNSJmY6g6Clsn5zqjRqU"
    assert base64.b64encode(auth.ed25519_public_key(b"pw2")).decode().rstrip("=") == stored


@settings(max_examples=20, deadline=None)
@given(st.binary(max_size=80), st.binary(min_size=32, max_size=32))
def test_ed25519_signature_verifies_with_rfc8032_verifier(password: bytes, nonce: bytes) -> None:
    sig = auth.ed25519_sign(password, nonce)
    assert len(sig) == 64
    Ed25519PublicKey.from_public_bytes(auth.ed25519_public_key(password)).verify(sig, nonce)


def test_ed25519_equals_standard_ed25519_for_32_byte_passwords() -> None:
    # With a 32-byte "password", MariaDB's scheme is exactly RFC 8032 with that seed.
    seed = bytes(range(32))
    nonce = b"n" * 32
    assert auth.ed25519_sign(seed, nonce) == Ed25519PrivateKey.from_private_bytes(seed).sign(nonce)


def test_cleartext() -> None:
    assert auth.cleartext_password(b"tok") == b"tok\x00"
