"""wardgate errors as MySQL ERR packets: error numbers and SQLSTATEs clients understand.

Owns the mapping from wardgate's error hierarchy (:mod:`wardgate.core.errors`) to the
error number / SQLSTATE pairs MySQL and MariaDB clients already know how to present:
an access denial looks like the server's own ``ERROR 1045 (28000)``, a policy denial
like ``ERROR 1142 (42000)``, so drivers map them to the right exception classes
(Connector/J: 28xxx → SQLInvalidAuthorizationSpecException, 42xxx →
SQLSyntaxErrorException, 08xxx → SQLNonTransientConnectionException).
"""

from __future__ import annotations

from enum import IntEnum

from wardgate.core.errors import (
    AuthenticationError,
    AuthorizationError,
    ProtocolViolationError,
    RecordingUnavailableError,
    TargetUnavailableError,
    UnknownTargetError,
    WardgateError,
)

from .messages import ErrPacket


class ErrorCode(IntEnum):
    """Server error numbers wardgate sends (MySQL/MariaDB ``ER_*``)."""

    HANDSHAKE_ERROR = 1043  # 08S01 Bad handshake
    DBACCESS_DENIED = 1044  # 42000 Access denied for user to database
    ACCESS_DENIED = 1045  # 28000 Access denied for user (using password)
    UNKNOWN_COM = 1047  # 08S01 Unknown command
    BAD_DB = 1049  # 42000 Unknown database
    UNKNOWN_ERROR = 1105  # HY000
    TABLEACCESS_DENIED = 1142  # 42000 command denied to user for table
    NOT_ALLOWED_COMMAND = 1148  # 42000 The used command is not allowed (LOAD DATA LOCAL)
    NET_PACKET_TOO_LARGE = 1153  # 08S01 Got a packet bigger than 'max_allowed_packet'
    SPECIFIC_ACCESS_DENIED = 1227  # 42000 you need (at least one of) the X privilege(s)
    NOT_SUPPORTED_AUTH_MODE = 1251  # 08004 Client does not support authentication protocol
    OPTION_PREVENTS_STATEMENT = 1290  # HY000 server option prevents this statement
    QUERY_INTERRUPTED = 1317  # 70100 Query execution was interrupted
    CONN_HOST_ERROR = 2003  # HY000 Can't connect to server (what MySQL Router sends too)


#: The SQLSTATE each server error number carries in MySQL/MariaDB.
SQLSTATE: dict[int, str] = {
    ErrorCode.HANDSHAKE_ERROR: "08S01",
    ErrorCode.DBACCESS_DENIED: "42000",
    ErrorCode.ACCESS_DENIED: "28000",
    ErrorCode.UNKNOWN_COM: "08S01",
    ErrorCode.BAD_DB: "42000",
    ErrorCode.UNKNOWN_ERROR: "HY000",
    ErrorCode.TABLEACCESS_DENIED: "42000",
    ErrorCode.NOT_ALLOWED_COMMAND: "42000",
    ErrorCode.NET_PACKET_TOO_LARGE: "08S01",
    ErrorCode.SPECIFIC_ACCESS_DENIED: "42000",
    ErrorCode.NOT_SUPPORTED_AUTH_MODE: "08004",
    ErrorCode.OPTION_PREVENTS_STATEMENT: "HY000",
    ErrorCode.QUERY_INTERRUPTED: "70100",
    ErrorCode.CONN_HOST_ERROR: "HY000",
}


def error_packet(code: int, message: str, sqlstate: str | None = None) -> ErrPacket:
    """An ERR with the SQLSTATE MySQL pairs with ``code`` (HY000 if unknown)."""
    return ErrPacket(int(code), message, sqlstate or SQLSTATE.get(code, "HY000"))


def error_code_for(error: WardgateError, *, privilege: bool = False) -> ErrorCode:
    """The error number a wardgate error travels as.

    ``privilege`` picks 1227 ("you need the … privilege", e.g. for SUPER-only or
    administrative statements) over 1142 ("command denied … for table") for an
    :class:`AuthorizationError`.
    """
    if isinstance(error, AuthenticationError):
        return ErrorCode.ACCESS_DENIED
    if isinstance(error, UnknownTargetError):
        return ErrorCode.BAD_DB
    if isinstance(error, AuthorizationError):
        return ErrorCode.SPECIFIC_ACCESS_DENIED if privilege else ErrorCode.TABLEACCESS_DENIED
    if isinstance(error, TargetUnavailableError):
        return ErrorCode.CONN_HOST_ERROR
    if isinstance(error, ProtocolViolationError):
        return ErrorCode.HANDSHAKE_ERROR
    if isinstance(error, RecordingUnavailableError):
        return ErrorCode.OPTION_PREVENTS_STATEMENT
    return ErrorCode.UNKNOWN_ERROR


def error_packet_for(error: WardgateError, *, privilege: bool = False) -> ErrPacket:
    """The ERR packet for a wardgate error; the message is the error's own text, which
    already names the rule and what to do next."""
    code = error_code_for(error, privilege=privilege)
    return error_packet(code, str(error) or type(error).__name__)


def access_denied(user: str, host: str = "wardgate") -> ErrPacket:
    """The generic ``ERROR 1045 (28000)`` for a failed login (no detail for the caller)."""
    return error_packet(
        ErrorCode.ACCESS_DENIED,
        f"Access denied for user '{user}'@'{host}' (wardgate: the token was missing, "
        "invalid or expired; get a fresh one and connect again)",
    )
