"""Client-side auth plugin answers: what the gateway sends upstream for a password.

Owns the cryptography of each auth plugin wardgate can log in to a target with:

* ``mysql_native_password`` — SHA1 scramble;
* ``caching_sha2_password`` — fast path (SHA256 scramble), full path as cleartext over
  TLS or RSA-OAEP with the server's public key;
* ``sha256_password`` — the same full-path encodings;
* ``client_ed25519`` — MariaDB's ed25519 plugin, signing the server's nonce;
* ``mysql_clear_password`` — the password itself, only over TLS.

These are pure functions over bytes; which one runs when is :mod:`.login`'s business.
The ed25519 signer is pure Python because MariaDB derives the key from SHA-512 of a
password of any length, which ``cryptography``'s 32-byte-seed API cannot express; it is
not constant-time, so log in over TLS to targets whose identity is verified.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from wardgate.core.errors import TargetUnavailableError

from .handshake import SCRAMBLE_LENGTH

# Plugin names, not secrets.
NATIVE_PASSWORD = "mysql_native_password"  # noqa: S105
CACHING_SHA2_PASSWORD = "caching_sha2_password"  # noqa: S105
SHA256_PASSWORD = "sha256_password"  # noqa: S105
CLEAR_PASSWORD = "mysql_clear_password"  # noqa: S105
ED25519 = "client_ed25519"

#: caching_sha2_password AuthMoreData markers.
CACHING_SHA2_REQUEST_PUBLIC_KEY = 0x02
CACHING_SHA2_FAST_AUTH_SUCCESS = 0x03
CACHING_SHA2_PERFORM_FULL_AUTH = 0x04
#: sha256_password's "send me your public key" request.
SHA256_REQUEST_PUBLIC_KEY = 0x01


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def scramble_native_password(password: bytes, nonce: bytes) -> bytes:
    """``SHA1(password) XOR SHA1(nonce + SHA1(SHA1(password)))``; empty for no password."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password).digest()  # noqa: S324 - the protocol mandates SHA1
    stage2 = hashlib.sha1(stage1).digest()  # noqa: S324
    return _xor(stage1, hashlib.sha1(nonce[:SCRAMBLE_LENGTH] + stage2).digest())  # noqa: S324


def scramble_caching_sha2(password: bytes, nonce: bytes) -> bytes:
    """Fast-path scramble: ``SHA256(p) XOR SHA256(SHA256(SHA256(p)) + nonce)``."""
    if not password:
        return b""
    p1 = hashlib.sha256(password).digest()
    p2 = hashlib.sha256(p1).digest()
    return _xor(p1, hashlib.sha256(p2 + nonce[:SCRAMBLE_LENGTH]).digest())


def cleartext_password(password: bytes) -> bytes:
    """The password as mysql_clear_password and the TLS full paths send it: NUL-terminated."""
    return password + b"\x00"


def encrypt_password_rsa(password: bytes, nonce: bytes, public_key_pem: bytes) -> bytes:
    """Full-path answer without TLS: RSA-OAEP(SHA1) of ``(password + NUL) XOR nonce``.

    MySQL 8.0.5+ and MariaDB use OAEP padding; the nonce repeats over the password.
    """
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError as exc:
        raise TargetUnavailableError(
            f"the target's RSA public key for {CACHING_SHA2_PASSWORD} cannot be loaded "
            f"({exc}); configure the key explicitly or connect upstream over TLS"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise TargetUnavailableError(
            "the target's public key for password encryption is not an RSA key; "
            "connect upstream over TLS instead"
        )
    salt = nonce[:SCRAMBLE_LENGTH]
    if not salt:
        raise TargetUnavailableError("cannot encrypt the password: the server sent no nonce")
    plain = cleartext_password(password)
    message = bytes(b ^ salt[i % len(salt)] for i, b in enumerate(plain))
    sha1 = hashes.SHA1()  # noqa: S303 - the protocol mandates OAEP with SHA1
    return key.encrypt(
        message, padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1, label=None)
    )


# -- MariaDB client_ed25519 ------------------------------------------------------------------
#
# MariaDB's ed25519 plugin (plugin/auth_ed25519, ref10 crypto_sign) is RFC 8032 Ed25519
# with one change: the 64-byte expanded secret is SHA-512(password) instead of
# SHA-512(32-byte seed). The server stores base64(A), the encoded public point.

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)

_Point = tuple[int, int, int, int]  # extended homogeneous coordinates (X, Y, Z, T)


def _point_add(p: _Point, q: _Point) -> _Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _point_mul(s: int, p: _Point) -> _Point:
    q: _Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _point_add(q, p)
        p = _point_add(p, p)
        s >>= 1
    return q


def _point_compress(p: _Point) -> bytes:
    zinv = pow(p[2], _P - 2, _P)
    x = p[0] * zinv % _P
    y = p[1] * zinv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x & 1) != sign:
        x = _P - x
    return x


_GY = 4 * pow(5, _P - 2, _P) % _P
_GX = _recover_x(_GY, 0)
_BASE: _Point = (_GX, _GY, 1, _GX * _GY % _P)


def _ed25519_secret(password: bytes) -> tuple[int, bytes]:
    h = hashlib.sha512(password).digest()
    a = bytearray(h[:32])
    a[0] &= 248
    a[31] &= 63
    a[31] |= 64
    return int.from_bytes(a, "little"), h[32:]


def ed25519_public_key(password: bytes) -> bytes:
    """The 32-byte public key MariaDB stores for ``password`` (``ed25519_password()``)."""
    a, _ = _ed25519_secret(password)
    return _point_compress(_point_mul(a, _BASE))


def ed25519_sign(password: bytes, nonce: bytes) -> bytes:
    """client_ed25519's answer: the 64-byte Ed25519 signature of ``nonce``."""
    a, prefix = _ed25519_secret(password)
    public = _point_compress(_point_mul(a, _BASE))
    r = int.from_bytes(hashlib.sha512(prefix + nonce).digest(), "little") % _L
    big_r = _point_compress(_point_mul(r, _BASE))
    k = int.from_bytes(hashlib.sha512(big_r + public + nonce).digest(), "little") % _L
    s = (r + k * a) % _L
    return big_r + s.to_bytes(32, "little")


def native_password_hash(password: bytes) -> str:
    """What MariaDB's ``PASSWORD()`` returns: ``*`` + hex(SHA1(SHA1(password))), uppercase."""
    stage2 = hashlib.sha1(hashlib.sha1(password).digest()).digest()  # noqa: S324
    return "*" + stage2.hex().upper()


def check_native_password(scramble: bytes, nonce: bytes, stage2: bytes) -> bool:
    """Server-side check of a native scramble against a stored SHA1(SHA1(password)).

    Used by tests and by a gateway that fronts a native-password client with a secret
    it stores as a hash; compares in constant time.
    """
    if len(scramble) != 20:
        return False
    candidate_stage1 = _xor(
        scramble,
        hashlib.sha1(nonce[:SCRAMBLE_LENGTH] + stage2).digest(),  # noqa: S324
    )
    return hmac.compare_digest(hashlib.sha1(candidate_stage1).digest(), stage2)  # noqa: S324
