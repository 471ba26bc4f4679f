"""Client-side PostgreSQL authentication with the credential the gateway holds (sans-I/O).

Feed each AuthenticationRequest payload to ``respond``; it returns the bytes to send
back, or ``None`` when the server said AuthenticationOk. SCRAM is done by ``scramp``
(the library pg8000 uses); MD5 and cleartext are one line each.
"""

from __future__ import annotations

import hashlib
import ssl
import struct

import scramp

from wardgate.core.errors import TargetUnavailableError
from wardgate.proto.pg import messages as m

AUTH_OK = 0
AUTH_CLEARTEXT = 3
AUTH_MD5 = 5
AUTH_SASL = 10
AUTH_SASL_CONTINUE = 11
AUTH_SASL_FINAL = 12


def md5_password(user: str, password: str, salt: bytes) -> bytes:
    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()  # noqa: S324 - protocol
    outer = hashlib.md5(inner.encode() + salt).hexdigest()  # noqa: S324 - protocol
    return b"md5" + outer.encode() + b"\x00"


class UpstreamAuthenticator:
    def __init__(
        self, target: str, user: str, password: str | None, ssl_object: ssl.SSLObject | None
    ) -> None:
        self._target = target
        self._user = user
        self._password = password
        self._ssl_object = ssl_object
        self._scram: scramp.ScramClient | None = None
        self.method = "trust"

    def _need_password(self, method: str) -> str:
        if self._password is None:
            raise TargetUnavailableError(
                f"target {self._target!r} asks for {method} authentication but the gateway "
                "holds no password for it (set targets.<name>.credential.password*)"
            )
        return self._password

    def respond(self, payload: bytes) -> bytes | None:
        (code,) = struct.unpack_from("!i", payload, 0)
        if code == AUTH_OK:
            return None
        if code == AUTH_CLEARTEXT:
            self.method = "password"
            return m.password_message(self._need_password("password").encode() + b"\x00")
        if code == AUTH_MD5:
            self.method = "md5"
            salt = payload[4:8]
            return m.password_message(md5_password(self._user, self._need_password("md5"), salt))
        if code == AUTH_SASL:
            mechanisms = [x.decode() for x in payload[4:].split(b"\x00") if x]
            password = self._need_password("SCRAM")
            binding = None
            usable = [x for x in mechanisms if x in ("SCRAM-SHA-256", "SCRAM-SHA-256-PLUS")]
            if "SCRAM-SHA-256-PLUS" in usable and self._ssl_object is not None:
                binding = ("tls-server-end-point", self._ssl_object)
            elif "SCRAM-SHA-256-PLUS" in usable:
                usable.remove("SCRAM-SHA-256-PLUS")
            if not usable:
                raise TargetUnavailableError(
                    f"target {self._target!r} offers SASL mechanisms {mechanisms}, none of "
                    "which wardgate supports"
                )
            try:
                self._scram = scramp.ScramClient(
                    usable, self._user, password, channel_binding=binding
                )
                first = self._scram.get_client_first()
            except scramp.ScramException as e:
                raise TargetUnavailableError(
                    f"SCRAM with target {self._target!r} failed: {e}"
                ) from e
            self.method = self._scram.mechanism_name
            return m.sasl_initial_response(self._scram.mechanism_name, first.encode())
        if code == AUTH_SASL_CONTINUE and self._scram is not None:
            try:
                self._scram.set_server_first(payload[4:].decode())
                return m.password_message(self._scram.get_client_final().encode())
            except scramp.ScramException as e:
                raise TargetUnavailableError(
                    f"SCRAM with target {self._target!r} failed: {e}"
                ) from e
        if code == AUTH_SASL_FINAL and self._scram is not None:
            try:
                self._scram.set_server_final(payload[4:].decode())
            except scramp.ScramException as e:
                # A bad server signature means we may be talking to an impostor.
                raise TargetUnavailableError(
                    f"target {self._target!r} failed to prove it knows the password: {e}"
                ) from e
            return b""
        raise TargetUnavailableError(
            f"target {self._target!r} asks for an authentication method wardgate does not "
            f"support (AuthenticationRequest code {code}); "
            "use trust, password, md5 or scram-sha-256"
        )
