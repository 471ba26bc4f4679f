"""wardgate errors → MySQL ERR packets with the numbers and SQLSTATEs clients expect."""

from __future__ import annotations

import pytest

from wardgate.core.errors import (
    AuthenticationError,
    AuthorizationError,
    ConfigError,
    ProtocolViolationError,
    RecordingUnavailableError,
    TargetUnavailableError,
    UnknownTargetError,
    WardgateError,
)
from wardgate.proto.mysql.errors import (
    ErrorCode,
    access_denied,
    error_code_for,
    error_packet,
    error_packet_for,
)
from wardgate.proto.mysql.messages import ErrPacket


@pytest.mark.parametrize(
    ("error", "code", "sqlstate"),
    [
        (AuthenticationError("token expired"), 1045, "28000"),
        (UnknownTargetError("no target 'nope'"), 1049, "42000"),
        (AuthorizationError("rule no-ddl denied DROP TABLE"), 1142, "42000"),
        (TargetUnavailableError("cannot reach demo_mysql"), 2003, "HY000"),
        (ProtocolViolationError("bad packet"), 1043, "08S01"),
        (RecordingUnavailableError("recorder down"), 1290, "HY000"),
        (ConfigError("bad key"), 1105, "HY000"),
    ],
)
def test_mapping(error: WardgateError, code: int, sqlstate: str) -> None:
    err = error_packet_for(error)
    assert (err.code, err.sqlstate, err.message) == (code, sqlstate, str(error))
    # what the client library will see on the wire
    assert ErrPacket.parse(err.encode()) == err


def test_privilege_denial_uses_1227() -> None:
    error = AuthorizationError("rule admin-only: SET GLOBAL needs approval")
    assert error_code_for(error, privilege=True) == ErrorCode.SPECIFIC_ACCESS_DENIED
    assert error_packet_for(error, privilege=True).sqlstate == "42000"


def test_error_packet_defaults_sqlstate() -> None:
    assert error_packet(ErrorCode.NOT_ALLOWED_COMMAND, "LOAD DATA LOCAL is denied").sqlstate == (
        "42000"
    )
    assert error_packet(9999, "x").sqlstate == "HY000"
    assert error_packet(1045, "x", "HY000").sqlstate == "HY000"


def test_access_denied_looks_like_the_server_and_says_what_to_do() -> None:
    err = access_denied("alice")
    assert err.code == 1045 and err.sqlstate == "28000"
    assert err.message.startswith("Access denied for user 'alice'@")
    assert "fresh" in err.message
