"""One shallow hierarchy of errors. Every message says what happened and what to do next.

Adapters turn these into protocol-native errors (PostgreSQL ErrorResponse with a SQLSTATE,
MySQL ERR packet, HTTP 403 JSON); the ``sqlstate`` on each class is the PostgreSQL code the
PostgreSQL adapter uses, and the MySQL adapter maps it to an error number.
"""

from __future__ import annotations


class WardgateError(Exception):
    """Base of every error wardgate raises on purpose."""

    sqlstate = "XX000"


class ConfigError(WardgateError):
    """The configuration file is invalid; the message names the key and line."""


class AuthenticationError(WardgateError):
    """The caller could not be identified. Messages shown to clients stay generic."""

    sqlstate = "28P01"


class AuthorizationError(WardgateError):
    """The caller is identified but policy does not allow what it asked for."""

    sqlstate = "42501"


class UnknownTargetError(WardgateError):
    """The requested target does not exist or is not visible to the caller."""

    sqlstate = "3D000"


class TargetUnavailableError(WardgateError):
    """The gateway could not reach, or authenticate to, the target."""

    sqlstate = "08001"


class ProtocolViolationError(WardgateError):
    """The peer sent bytes that are not valid for the protocol state."""

    sqlstate = "08P01"


class RecordingUnavailableError(WardgateError):
    """The recorder cannot accept events; fail-closed policy refuses new statements."""

    sqlstate = "58030"
