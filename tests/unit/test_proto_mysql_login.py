"""Login state machines, played against scripted peers built from the codec itself.

The real-server counterparts (native, ed25519, pymysql through DownstreamLogin) live in
test_proto_mysql_mariadb.py; these cover the paths MariaDB 10.11 cannot show here:
caching_sha2_password's fast and full paths (RSA and TLS), sha256_password, and every
refusal.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from wardgate.core.errors import ProtocolViolationError, TargetUnavailableError
from wardgate.proto.mysql import auth
from wardgate.proto.mysql.constants import CODEC_CAPABILITIES, Capability
from wardgate.proto.mysql.errors import ErrorCode
from wardgate.proto.mysql.handshake import (
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    SslRequest,
)
from wardgate.proto.mysql.login import (
    CredentialsPresented,
    DownstreamLogin,
    LoginRefused,
    LoginRejected,
    LoginSucceeded,
    Send,
    StartTls,
    UpstreamLogin,
)
from wardgate.proto.mysql.messages import ChangeUser, ErrPacket, OkPacket
from wardgate.proto.mysql.packets import Packet, PacketFramer, encode_packet

NONCE = b"abcdefghijklmnopqrst"
MYSQL8_CAPS = (CODEC_CAPABILITIES | Capability.SSL) & 0xFFFFFFFF  # CLIENT_MYSQL set
OK = OkPacket().encode(Capability.PROTOCOL_41)


def packets(data: bytes) -> list[Packet]:
    framer = PacketFramer()
    framer.feed(data)
    return list(framer)


def one(data: bytes) -> Packet:
    (packet,) = packets(data)
    return packet


def greeting(plugin: str = "caching_sha2_password", caps: int = MYSQL8_CAPS) -> Packet:
    hello = HandshakeV10("8.0.36", 9, NONCE, caps, auth_plugin_name=plugin)
    return Packet.of(0, hello.encode())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def decrypt(key: rsa.RSAPrivateKey, blob: bytes) -> bytes:
    sha1 = hashes.SHA1()
    plain = key.decrypt(blob, padding.OAEP(mgf=padding.MGF1(algorithm=sha1), algorithm=sha1,
                                           label=None))
    return bytes(b ^ NONCE[i % 20] for i, b in enumerate(plain))


# -- UpstreamLogin ---------------------------------------------------------------------------


def test_caching_sha2_fast_path() -> None:
    login = UpstreamLogin(username="app", password=b"pw", database="shop")
    step = login.receive(greeting())
    assert isinstance(step, Send)
    sent = one(step.data)
    assert sent.seq == 1
    response = HandshakeResponse41.parse(sent.payload)
    assert response.username == "app" and response.database == "shop"
    assert response.auth_plugin_name == "caching_sha2_password"
    assert response.auth_response == auth.scramble_caching_sha2(b"pw", NONCE)
    assert login.receive(Packet.of(2, b"\x01\x03")) is None  # fast auth succeeded
    done = login.receive(Packet.of(3, OK))
    assert isinstance(done, LoginSucceeded)
    assert done.plugin == "caching_sha2_password" and not done.tls
    assert done.capabilities & Capability.CONNECT_WITH_DB
    assert not done.capabilities & Capability.LOCAL_FILES  # never asked for by default


def test_caching_sha2_full_path_with_rsa_key_request(rsa_key: rsa.RSAPrivateKey) -> None:
    login = UpstreamLogin(username="app", password=b"s3cret")
    login.receive(greeting())
    step = login.receive(Packet.of(2, b"\x01\x04"))  # perform full authentication
    assert isinstance(step, Send) and bytes(one(step.data).payload) == b"\x02"  # request key
    step = login.receive(Packet.of(4, b"\x01" + pem(rsa_key)))
    assert isinstance(step, Send)
    blob = one(step.data)
    assert blob.seq == 5
    assert decrypt(rsa_key, bytes(blob.payload)) == b"s3cret\x00"
    assert isinstance(login.receive(Packet.of(6, OK)), LoginSucceeded)


def test_caching_sha2_full_path_with_configured_key(rsa_key: rsa.RSAPrivateKey) -> None:
    login = UpstreamLogin(username="app", password=b"s3cret", server_public_key=pem(rsa_key))
    login.receive(greeting())
    step = login.receive(Packet.of(2, b"\x01\x04"))
    assert isinstance(step, Send)
    assert decrypt(rsa_key, bytes(one(step.data).payload)) == b"s3cret\x00"


def test_caching_sha2_full_path_over_tls_sends_cleartext() -> None:
    login = UpstreamLogin(username="app", password=b"s3cret", tls="required")
    step = login.receive(greeting())
    assert isinstance(step, StartTls)
    ssl = one(step.data)
    assert ssl.seq == 1 and len(ssl.payload) == 32
    assert SslRequest.parse(ssl.payload).capabilities & Capability.SSL
    with pytest.raises(ProtocolViolationError):
        login.receive(Packet.of(2, b"\x01\x04"))  # nothing may arrive before TLS is up
    login = UpstreamLogin(username="app", password=b"s3cret", tls="required")
    login.receive(greeting())
    step2 = login.tls_started()
    assert one(step2.data).seq == 2
    step3 = login.receive(Packet.of(3, b"\x01\x04"))
    assert isinstance(step3, Send) and bytes(one(step3.data).payload) == b"s3cret\x00"
    done = login.receive(Packet.of(5, OK))
    assert isinstance(done, LoginSucceeded) and done.tls


def test_tls_required_but_not_offered() -> None:
    login = UpstreamLogin(username="app", password=b"pw", tls="required")
    with pytest.raises(TargetUnavailableError, match="does not offer TLS"):
        login.receive(greeting(caps=MYSQL8_CAPS & ~Capability.SSL))
    preferred = UpstreamLogin(username="app", password=b"pw", tls="preferred")
    assert isinstance(preferred.receive(greeting(caps=MYSQL8_CAPS & ~Capability.SSL)), Send)


def test_auth_switch_to_native_and_ed25519() -> None:
    login = UpstreamLogin(username="app", password=b"pw2")
    login.receive(greeting(plugin="mysql_native_password"))
    nonce32 = bytes(range(32))
    step = login.receive(Packet.of(2, AuthSwitchRequest("client_ed25519", nonce32).encode()))
    assert isinstance(step, Send)
    sig = bytes(one(step.data).payload)
    Ed25519PublicKey.from_public_bytes(auth.ed25519_public_key(b"pw2")).verify(sig, nonce32)
    done = login.receive(Packet.of(4, OK))
    assert isinstance(done, LoginSucceeded) and done.plugin == "client_ed25519"

    login = UpstreamLogin(username="app", password=b"pw1")
    login.receive(greeting())
    switch = AuthSwitchRequest("mysql_native_password", b"N" * 20 + b"\x00")
    step = login.receive(Packet.of(2, switch.encode()))
    assert isinstance(step, Send)
    assert one(step.data).payload == auth.scramble_native_password(b"pw1", b"N" * 20)


def test_ed25519_greeting_is_answered_natively_first() -> None:
    # the greeting's 20-byte nonce is not ed25519's: answer native, expect a switch
    login = UpstreamLogin(username="app", password=b"pw")
    step = login.receive(greeting(plugin="client_ed25519"))
    assert isinstance(step, Send)
    assert HandshakeResponse41.parse(one(step.data).payload).auth_plugin_name == (
        "mysql_native_password"
    )


def test_sha256_password_requests_key(rsa_key: rsa.RSAPrivateKey) -> None:
    login = UpstreamLogin(username="app", password=b"pw")
    step = login.receive(greeting(plugin="sha256_password"))
    assert isinstance(step, Send)
    assert HandshakeResponse41.parse(one(step.data).payload).auth_response == b"\x01"
    step = login.receive(Packet.of(2, b"\x01" + pem(rsa_key)))
    assert isinstance(step, Send)
    assert decrypt(rsa_key, bytes(one(step.data).payload)) == b"pw\x00"


def test_clear_password_only_over_tls() -> None:
    login = UpstreamLogin(username="app", password=b"pw")
    login.receive(greeting())
    switch = AuthSwitchRequest("mysql_clear_password", b"")
    with pytest.raises(TargetUnavailableError, match="refusing to send the password in clear"):
        login.receive(Packet.of(2, switch.encode()))
    allowed = UpstreamLogin(username="app", password=b"pw", allow_cleartext_without_tls=True)
    allowed.receive(greeting())
    step = allowed.receive(Packet.of(2, switch.encode()))
    assert isinstance(step, Send) and bytes(one(step.data).payload) == b"pw\x00"


def test_unsupported_plugin_names_the_fix() -> None:
    login = UpstreamLogin(username="app", password=b"pw")
    login.receive(greeting())
    with pytest.raises(TargetUnavailableError, match=r"'dialog'.*change the target account"):
        login.receive(Packet.of(2, AuthSwitchRequest("dialog", b"\x04Password: ").encode()))


def test_rejection_and_early_error() -> None:
    login = UpstreamLogin(username="app", password=b"bad")
    login.receive(greeting())
    denied = ErrPacket(1045, "Access denied for user 'app'@'localhost'", "28000").encode()
    step = login.receive(Packet.of(2, denied))
    assert isinstance(step, LoginRejected) and step.error.code == 1045
    busy = UpstreamLogin(username="app", password=b"pw")
    step = busy.receive(Packet.of(0, b"\xff\x10\x04Too many connections"))
    assert isinstance(step, LoginRejected) and step.error.code == 1040


def test_upstream_sequence_is_checked() -> None:
    login = UpstreamLogin(username="app", password=b"pw")
    login.receive(greeting())
    with pytest.raises(ProtocolViolationError, match="sequence id 7"):
        login.receive(Packet.of(7, OK))


def test_capabilities_are_intersected_with_the_server() -> None:
    login = UpstreamLogin(username="app", password=b"")
    caps = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH)
    step = login.receive(greeting(caps=caps | Capability.LONG_PASSWORD))
    assert isinstance(step, Send)
    sent = HandshakeResponse41.parse(one(step.data).payload)
    assert not sent.capabilities & Capability.DEPRECATE_EOF
    assert not sent.capabilities & Capability.CONNECT_ATTRS


# -- DownstreamLogin -------------------------------------------------------------------------


CLIENT_CAPS = (
    Capability.PROTOCOL_41
    | Capability.SECURE_CONNECTION
    | Capability.PLUGIN_AUTH
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.CONNECT_WITH_DB
    | Capability.DEPRECATE_EOF
    | Capability.LONG_PASSWORD
)


def client_response(caps: int = CLIENT_CAPS, plugin: str = "mysql_native_password",
                    auth_response: bytes = b"\x01" * 20) -> bytes:
    return HandshakeResponse41(capabilities=caps, username="alice", auth_response=auth_response,
                               database="demo_mysql", auth_plugin_name=plugin).encode()


def test_downstream_tls_then_clear_password_switch() -> None:
    login = DownstreamLogin(connection_id=77, tls_available=True)
    hello = HandshakeV10.parse(one(login.greeting()).payload)
    assert hello.capabilities & Capability.SSL
    assert hello.connection_id == 77 and hello.is_mariadb
    assert not hello.capabilities & Capability.LOCAL_FILES
    step = login.receive(Packet.of(1, SslRequest(CLIENT_CAPS | Capability.SSL).encode()))
    assert isinstance(step, StartTls)
    login.tls_started()
    step = login.receive(Packet.of(2, client_response(CLIENT_CAPS | Capability.SSL)))
    assert isinstance(step, Send)
    switch = one(step.data)
    assert switch.seq == 3
    assert AuthSwitchRequest.parse(switch.payload).plugin_name == "mysql_clear_password"
    token = b"wg_" + b"t" * 600  # tokens are longer than any scramble
    step = login.receive(Packet.of(4, token + b"\x00"))
    assert isinstance(step, CredentialsPresented)
    assert (step.username, step.token, step.database, step.tls) == ("alice", token,
                                                                     "demo_mysql", True)
    assert step.capabilities & Capability.DEPRECATE_EOF
    ok = one(login.accept())
    assert ok.seq == 5 and ok.payload[0] == 0


def test_downstream_refuses_cleartext_without_tls() -> None:
    login = DownstreamLogin(connection_id=1, tls_available=True)
    login.greeting()
    step = login.receive(Packet.of(1, client_response()))
    assert isinstance(step, LoginRefused)
    assert step.error.code == ErrorCode.ACCESS_DENIED and "TLS" in step.error.message
    assert one(step.data).seq == 2


def test_downstream_loopback_without_tls_when_allowed() -> None:
    login = DownstreamLogin(connection_id=1, allow_cleartext_without_tls=True)
    hello = HandshakeV10.parse(one(login.greeting()).payload)
    assert not hello.capabilities & Capability.SSL
    step = login.receive(Packet.of(1, client_response()))
    assert isinstance(step, Send)
    step2 = login.receive(Packet.of(3, b"tok\x00"))
    assert isinstance(step2, CredentialsPresented) and step2.token == b"tok" and not step2.tls
    err = one(login.reject(ErrPacket(1045, "Access denied", "28000")))
    assert err.seq == 4 and ErrPacket.parse(err.payload).sqlstate == "28000"


def test_downstream_client_that_already_speaks_clear_password() -> None:
    login = DownstreamLogin(connection_id=1, allow_cleartext_without_tls=True)
    login.greeting()
    step = login.receive(Packet.of(1, client_response(plugin="mysql_clear_password",
                                                      auth_response=b"tok\x00")))
    assert isinstance(step, CredentialsPresented) and step.token == b"tok"
    assert one(login.accept()).seq == 2


def test_downstream_refusals() -> None:
    no_tls = DownstreamLogin(connection_id=1)
    no_tls.greeting()
    step = no_tls.receive(Packet.of(1, SslRequest(CLIENT_CAPS | Capability.SSL).encode()))
    assert isinstance(step, LoginRefused) and "no certificate" in step.error.message
    old = DownstreamLogin(connection_id=1, allow_cleartext_without_tls=True)
    old.greeting()
    step = old.receive(Packet.of(1, client_response(CLIENT_CAPS & ~Capability.PLUGIN_AUTH)))
    assert isinstance(step, LoginRefused) and step.error.code == ErrorCode.NOT_SUPPORTED_AUTH_MODE
    bad = DownstreamLogin(connection_id=1, allow_cleartext_without_tls=True)
    bad.greeting()
    step = bad.receive(Packet.of(1, bytes(40)))
    assert isinstance(step, LoginRefused) and step.error.code == ErrorCode.HANDSHAKE_ERROR
    with pytest.raises(ProtocolViolationError, match="sequence id 9"):
        DownstreamLogin(connection_id=1).receive(Packet.of(9, b""))


def test_downstream_change_user_reauthenticates() -> None:
    login = DownstreamLogin(connection_id=1, allow_cleartext_without_tls=True)
    login.greeting()
    login.receive(Packet.of(1, client_response()))
    login.receive(Packet.of(3, b"tok\x00"))
    login.accept()
    change = ChangeUser("bob", hashlib.sha1(b"x").digest(), "other", 45,
                        "mysql_native_password")
    step = login.change_user(Packet.of(0, change.encode(login.negotiated)))
    switch = one(step.data)
    assert switch.seq == 1 and switch.payload[0] == 0xFE
    creds = login.receive(Packet.of(2, b"tok2\x00"))
    assert isinstance(creds, CredentialsPresented)
    assert (creds.username, creds.token, creds.database) == ("bob", b"tok2", "other")
    assert one(login.accept()).seq == 3


def test_greeting_is_sequence_zero() -> None:
    data = DownstreamLogin(connection_id=5).greeting()
    assert data[3] == 0
    assert data == encode_packet(0, one(data).payload)
