"""Signing keys, key ids, key rings and the signed messages of the chain."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from wardgate.core.errors import ConfigError
from wardgate.recording.chain import (
    GENESIS_HASH,
    chain_hash,
    checkpoint_message,
    global_entry_message,
    head_message,
)
from wardgate.recording.keys import (
    KeyRing,
    SigningKey,
    key_id_of,
    load_or_create_signing_key,
    load_public_key,
    load_signing_key,
)


def test_key_id_is_first_16_hex_of_sha256_of_raw_public_key() -> None:
    key = SigningKey.generate()
    raw = key.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert key.key_id == hashlib.sha256(raw).hexdigest()[:16] == key_id_of(key.public_key)
    assert repr(key) == f"SigningKey(key_id={key.key_id!r})"  # no key material in logs


def test_key_is_generated_once_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "state" / "recording-key.pem"
    first = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = load_or_create_signing_key(path)
    assert second.key_id == first.key_id
    assert second.sign(b"m") == first.sign(b"m")  # ed25519 is deterministic


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    load_or_create_signing_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"chmod 600"):
        load_signing_key(path)


def test_non_ed25519_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    ec = generate_private_key(SECP256R1())
    path.write_bytes(
        ec.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="not an ed25519 key"):
        load_signing_key(path)


def test_keyring_verifies_rotated_keys_and_names_unknown_ones(tmp_path: Path) -> None:
    old, new, stranger = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    (tmp_path / "old.pub").write_bytes(old.public_pem())
    ring = KeyRing.for_key(new, [tmp_path / "old.pub"])
    assert ring.key_ids == {old.key_id, new.key_id}
    msg = b"statement"
    assert ring.check(old.key_id, old.sign(msg).hex(), msg) == "ok"
    assert ring.check(new.key_id, new.sign(msg).hex(), msg) == "ok"
    assert ring.check(new.key_id, old.sign(msg).hex(), msg) == "bad"
    assert ring.check(new.key_id, "zz", msg) == "bad"
    assert ring.check(stranger.key_id, stranger.sign(msg).hex(), msg) == "unknown-key"


def test_public_key_loads_from_private_pem_too(tmp_path: Path) -> None:
    key = SigningKey.generate()
    (tmp_path / "k.pem").write_bytes(key.private_pem())
    assert key_id_of(load_public_key(tmp_path / "k.pem")) == key.key_id


def test_chain_hash_is_sha256_of_prev_bytes_and_data() -> None:
    assert chain_hash(GENESIS_HASH, b"abc") == hashlib.sha256(bytes(32) + b"abc").hexdigest()


def test_signed_messages_are_domain_separated() -> None:
    # A signature over one kind of statement can never verify as another.
    h = "ab" * 32
    messages = {
        head_message("s", 5, h, "open"),
        head_message("s", 5, h, "sealed"),
        head_message("s", 5, h, "interrupted"),
        global_entry_message(5, h),
        checkpoint_message(5, h),
    }
    assert len(messages) == 5
