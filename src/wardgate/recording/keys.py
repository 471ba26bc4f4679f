"""The gateway's recording keys: the ed25519 signing key and the ring of keys that verify.

Owns loading (or first-time generation) of the private key as an unencrypted PKCS#8 PEM
file readable only by its owner, key ids (first 16 hex digits of the SHA-256 of the raw
32-byte public key), and verification against several public keys so recordings sealed
before a key rotation still verify.

Verification keys never come from the recording store itself: anyone able to edit the
store could otherwise add their own key. They come from the signing key file and from
``recording.trusted_public_keys``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from wardgate.core.errors import ConfigError

SignatureCheck = Literal["ok", "bad", "unknown-key"]


def key_id_of(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class SigningKey:
    """The private key that seals sessions, global-log entries and checkpoints."""

    __slots__ = ("_private", "key_id", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(key_id={self.key_id!r})"


def load_signing_key(path: Path) -> SigningKey:
    """Load the PEM private key at ``path``; refuse it if others can read it."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the recording signing key {path}: {exc.strerror}; "
            "check recording.key_file and the state directory permissions"
        ) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the recording signing key {path} is accessible by other users "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}` (anyone who can read "
            "it can forge recordings)"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"{path} is not an unencrypted PEM private key ({exc}); point recording.key_file "
            "at the gateway's ed25519 key or remove the file to generate a new one"
        ) from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"{path} holds a {type(key).__name__}, not an ed25519 key; recordings are "
            "signed with ed25519 only"
        )
    return SigningKey(key)


def load_or_create_signing_key(path: Path) -> SigningKey:
    """Load the key, or generate one on first start (created 0600, never overwritten)."""
    if path.exists():
        return load_signing_key(path)
    key = SigningKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # O_EXCL: two nodes starting at once on a shared directory must not both write.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_signing_key(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_pem())
        fh.flush()
        os.fsync(fh.fileno())
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM public key (or a PEM private key, whose public half is taken)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read trusted recording key {path}: {exc.strerror}; "
            "check recording.trusted_public_keys"
        ) from exc
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private.public_key()
            raise ConfigError(f"{path} is not an ed25519 key")
        public = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM ed25519 public key ({exc})") from exc
    if not isinstance(public, Ed25519PublicKey):
        raise ConfigError(f"{path} holds a {type(public).__name__}, not an ed25519 public key")
    return public


class KeyRing:
    """Public keys by key id; answers whether a signature verifies."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}
        for key in keys:
            self.add(key)

    @classmethod
    def for_key(cls, key: SigningKey, trusted: Iterable[Path] = ()) -> KeyRing:
        ring = cls([key.public_key])
        for path in trusted:
            ring.add(load_public_key(path))
        return ring

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> KeyRing:
        return cls(load_public_key(p) for p in paths)

    def add(self, key: Ed25519PublicKey) -> str:
        kid = key_id_of(key)
        self._keys[kid] = key
        return kid

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def check(self, key_id: str, signature_hex: str, message: bytes) -> SignatureCheck:
        key = self._keys.get(key_id)
        if key is None:
            return "unknown-key"
        try:
            key.verify(bytes.fromhex(signature_hex), message)
        except (InvalidSignature, ValueError):
            return "bad"
        return "ok"
