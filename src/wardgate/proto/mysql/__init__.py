"""Sans-I/O MySQL / MariaDB protocol codec: bytes in, messages out, no sockets.

Modules, each owning one layer:

* :mod:`.wire` — length-encoded and fixed integers/strings;
* :mod:`.packets` — framing, 16 MiB continuations, the payload cap;
* :mod:`.constants` — capabilities, status flags, commands, types;
* :mod:`.charsets` — collation ids to Python codecs;
* :mod:`.handshake` — greeting, SSLRequest, handshake response, auth switch/more data;
* :mod:`.auth` — auth plugin cryptography for logging in upstream;
* :mod:`.login` — the login exchange as two state machines (toward clients / targets);
* :mod:`.messages` — OK/ERR/EOF, column definitions, text rows, COM_* commands;
* :mod:`.binary` — binary-protocol rows and COM_STMT_EXECUTE parameters;
* :mod:`.tracker` — where each command's response ends;
* :mod:`.errors` — wardgate errors as ERR packets.

The names below are the surface the MySQL adapter and server use.
"""

from __future__ import annotations

from .binary import (
    BinaryValue,
    DateTimeValue,
    StmtExecute,
    TimeValue,
    ValueType,
    encode_binary_row,
    parse_binary_row,
)
from .constants import (
    CODEC_CAPABILITIES,
    GATEWAY_CAPABILITIES,
    Capability,
    ColumnFlag,
    Command,
    CursorType,
    FieldType,
    ServerStatus,
)
from .errors import ErrorCode, access_denied, error_packet, error_packet_for
from .handshake import (
    AuthMoreData,
    AuthSwitchRequest,
    HandshakeResponse41,
    HandshakeV10,
    SslRequest,
    is_ssl_request,
)
from .login import (
    DEFAULT_SERVER_VERSION,
    UPSTREAM_CAPABILITIES,
    CredentialsPresented,
    DownstreamLogin,
    LoginRefused,
    LoginRejected,
    LoginSucceeded,
    Send,
    StartTls,
    UpstreamLogin,
)
from .messages import (
    ChangeUser,
    ClientCommand,
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    FieldList,
    InitDb,
    LocalInfileRequest,
    OkPacket,
    ProcessKill,
    ProgressReport,
    Query,
    SetOption,
    SimpleCommand,
    StatementCommand,
    StmtFetch,
    StmtPrepare,
    StmtPrepareOk,
    StmtSendLongData,
    encode_text_row,
    parse_command,
    parse_text_row,
)
from .packets import DEFAULT_MAX_PAYLOAD, Packet, PacketFramer, encode_packet, encode_packets
from .tracker import ResponseKind, ResultSetTracker, expects_response, is_trackable

__all__ = [
    "CODEC_CAPABILITIES",
    "DEFAULT_MAX_PAYLOAD",
    "DEFAULT_SERVER_VERSION",
    "GATEWAY_CAPABILITIES",
    "UPSTREAM_CAPABILITIES",
    "AuthMoreData",
    "AuthSwitchRequest",
    "BinaryValue",
    "Capability",
    "ChangeUser",
    "ClientCommand",
    "ColumnDefinition",
    "ColumnFlag",
    "Command",
    "CredentialsPresented",
    "CursorType",
    "DateTimeValue",
    "DownstreamLogin",
    "EofPacket",
    "ErrPacket",
    "ErrorCode",
    "FieldList",
    "FieldType",
    "HandshakeResponse41",
    "HandshakeV10",
    "InitDb",
    "LocalInfileRequest",
    "LoginRefused",
    "LoginRejected",
    "LoginSucceeded",
    "OkPacket",
    "Packet",
    "PacketFramer",
    "ProcessKill",
    "ProgressReport",
    "Query",
    "ResponseKind",
    "ResultSetTracker",
    "Send",
    "ServerStatus",
    "SetOption",
    "SimpleCommand",
    "SslRequest",
    "StartTls",
    "StatementCommand",
    "StmtExecute",
    "StmtFetch",
    "StmtPrepare",
    "StmtPrepareOk",
    "StmtSendLongData",
    "TimeValue",
    "UpstreamLogin",
    "ValueType",
    "access_denied",
    "encode_binary_row",
    "encode_packet",
    "encode_packets",
    "encode_text_row",
    "error_packet",
    "error_packet_for",
    "expects_response",
    "is_ssl_request",
    "is_trackable",
    "parse_binary_row",
    "parse_command",
    "parse_text_row",
]
