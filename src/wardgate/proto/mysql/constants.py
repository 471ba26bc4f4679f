"""Numbers the MySQL and MariaDB protocols agree on: capabilities, status, commands, types.

Owns every protocol constant so that handshake, message and tracker code share one
spelling. Capabilities are one 64-bit :class:`Capability` flag: the low 32 bits are
MySQL's, the high 32 bits are MariaDB's extended capabilities (sent in the otherwise
reserved bytes of the handshake packets, and only when ``CLIENT_MYSQL`` — MySQL's
``CLIENT_LONG_PASSWORD`` — is clear).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Capability(IntFlag):
    """Client/server capability flags (``CLIENT_*``, ``MARIADB_CLIENT_*``)."""

    LONG_PASSWORD = 1 << 0  # MariaDB: CLIENT_MYSQL; clear on a MariaDB server/client
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24
    OPTIONAL_RESULTSET_METADATA = 1 << 25  # MySQL 8
    ZSTD_COMPRESSION_ALGORITHM = 1 << 26  # MySQL 8
    QUERY_ATTRIBUTES = 1 << 27  # MySQL 8.0.23
    MULTI_FACTOR_AUTHENTICATION = 1 << 28  # MySQL 8.0.27
    CAPABILITY_EXTENSION = 1 << 29
    SSL_VERIFY_SERVER_CERT = 1 << 30
    REMEMBER_OPTIONS = 1 << 31
    # MariaDB extended capabilities (bytes 28..31 of the handshake packets).
    MARIADB_PROGRESS = 1 << 32
    MARIADB_COM_MULTI = 1 << 33
    MARIADB_STMT_BULK_OPERATIONS = 1 << 34
    MARIADB_EXTENDED_METADATA = 1 << 35
    MARIADB_CACHE_METADATA = 1 << 36
    MARIADB_BULK_UNIT_RESULTS = 1 << 37


CLIENT_MYSQL = Capability.LONG_PASSWORD

#: Capabilities whose wire format this codec understands end to end. A gateway must
#: never let a client and a target negotiate anything outside this set: compression,
#: query attributes, optional metadata and MariaDB's metadata cache / COM_MULTI / bulk
#: change packet layouts the tracker and parsers do not model.
CODEC_CAPABILITIES = (
    Capability.LONG_PASSWORD
    | Capability.FOUND_ROWS
    | Capability.LONG_FLAG
    | Capability.CONNECT_WITH_DB
    | Capability.NO_SCHEMA
    | Capability.ODBC
    | Capability.LOCAL_FILES
    | Capability.IGNORE_SPACE
    | Capability.PROTOCOL_41
    | Capability.INTERACTIVE
    | Capability.SSL
    | Capability.IGNORE_SIGPIPE
    | Capability.TRANSACTIONS
    | Capability.RESERVED
    | Capability.SECURE_CONNECTION
    | Capability.MULTI_STATEMENTS
    | Capability.MULTI_RESULTS
    | Capability.PS_MULTI_RESULTS
    | Capability.PLUGIN_AUTH
    | Capability.CONNECT_ATTRS
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA
    | Capability.SESSION_TRACK
    | Capability.DEPRECATE_EOF
    | Capability.SSL_VERIFY_SERVER_CERT
    | Capability.REMEMBER_OPTIONS
    | Capability.MARIADB_PROGRESS
    | Capability.MARIADB_EXTENDED_METADATA
)

#: What wardgate announces to clients by default: :data:`CODEC_CAPABILITIES` minus
#: ``CLIENT_MYSQL`` (it greets as MariaDB so that MariaDB clients may use the extended
#: capabilities), minus ``LOCAL_FILES`` (LOAD DATA LOCAL is off unless policy allows it)
#: and minus ``SSL`` (add it when a TLS certificate is configured).
GATEWAY_CAPABILITIES = CODEC_CAPABILITIES & ~(
    Capability.LONG_PASSWORD | Capability.LOCAL_FILES | Capability.SSL
)


class ServerStatus(IntFlag):
    """``SERVER_STATUS_*`` flags carried by OK and EOF packets."""

    IN_TRANS = 0x0001
    AUTOCOMMIT = 0x0002
    MORE_RESULTS_EXISTS = 0x0008
    NO_GOOD_INDEX_USED = 0x0010
    NO_INDEX_USED = 0x0020
    CURSOR_EXISTS = 0x0040
    LAST_ROW_SENT = 0x0080
    DB_DROPPED = 0x0100
    NO_BACKSLASH_ESCAPES = 0x0200
    METADATA_CHANGED = 0x0400
    QUERY_WAS_SLOW = 0x0800
    PS_OUT_PARAMS = 0x1000
    IN_TRANS_READONLY = 0x2000
    SESSION_STATE_CHANGED = 0x4000
    ANSI_QUOTES = 0x8000  # MariaDB


class Command(IntEnum):
    """``COM_*`` command bytes (the first payload byte of every command packet)."""

    SLEEP = 0x00
    QUIT = 0x01
    INIT_DB = 0x02
    QUERY = 0x03
    FIELD_LIST = 0x04
    CREATE_DB = 0x05
    DROP_DB = 0x06
    REFRESH = 0x07
    SHUTDOWN = 0x08
    STATISTICS = 0x09
    PROCESS_INFO = 0x0A
    CONNECT = 0x0B
    PROCESS_KILL = 0x0C
    DEBUG = 0x0D
    PING = 0x0E
    TIME = 0x0F
    DELAYED_INSERT = 0x10
    CHANGE_USER = 0x11
    BINLOG_DUMP = 0x12
    TABLE_DUMP = 0x13
    CONNECT_OUT = 0x14
    REGISTER_SLAVE = 0x15
    STMT_PREPARE = 0x16
    STMT_EXECUTE = 0x17
    STMT_SEND_LONG_DATA = 0x18
    STMT_CLOSE = 0x19
    STMT_RESET = 0x1A
    SET_OPTION = 0x1B
    STMT_FETCH = 0x1C
    DAEMON = 0x1D
    BINLOG_DUMP_GTID = 0x1E
    RESET_CONNECTION = 0x1F
    CLONE = 0x20  # MySQL 8
    STMT_BULK_EXECUTE = 0xFA  # MariaDB
    MULTI = 0xFE  # MariaDB COM_MULTI


class FieldType(IntEnum):
    """``MYSQL_TYPE_*`` column / parameter types."""

    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    NULL = 6
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    NEWDATE = 14
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    TYPED_ARRAY = 20  # MySQL 8 replication only
    VECTOR = 242  # MySQL 9
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    TINY_BLOB = 249
    MEDIUM_BLOB = 250
    LONG_BLOB = 251
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


class ColumnFlag(IntFlag):
    """Column definition flags (the subset that matters on the wire)."""

    NOT_NULL = 1
    PRI_KEY = 2
    UNIQUE_KEY = 4
    MULTIPLE_KEY = 8
    BLOB = 16
    UNSIGNED = 32
    ZEROFILL = 64
    BINARY = 128
    ENUM = 256
    AUTO_INCREMENT = 512
    TIMESTAMP = 1024
    SET = 2048
    NO_DEFAULT_VALUE = 4096
    ON_UPDATE_NOW = 8192
    NUM = 32768


class CursorType(IntFlag):
    """COM_STMT_EXECUTE ``flags`` byte."""

    NO_CURSOR = 0
    READ_ONLY = 1
    FOR_UPDATE = 2
    SCROLLABLE = 4
    PARAMETER_COUNT_AVAILABLE = 8  # MySQL 8 with CLIENT_QUERY_ATTRIBUTES


class SetOption(IntEnum):
    """COM_SET_OPTION values."""

    MULTI_STATEMENTS_ON = 0
    MULTI_STATEMENTS_OFF = 1


#: Packet type markers (first payload byte).
OK_HEADER = 0x00
AUTH_MORE_DATA_HEADER = 0x01
LOCAL_INFILE_HEADER = 0xFB
EOF_HEADER = 0xFE
AUTH_SWITCH_HEADER = 0xFE
ERR_HEADER = 0xFF

#: MariaDB sends progress reports as ERR packets with this error number; they are not
#: errors and do not end a response.
PROGRESS_REPORT_ERRNO = 0xFFFF
#: MariaDB: COM_STMT_EXECUTE with this statement id runs the statement prepared last on the
#: connection (used to pipeline PREPARE + EXECUTE); a gateway must resolve it itself.
LAST_PREPARED_STATEMENT_ID = 0xFFFFFFFF
