from typing_extensions import Buffer

class Gate:
    def __init__(
        self,
        actions: bytes,
        default_action: int,
        unconditional: bool,
        keep: bytes,
        min_digits: int,
        rules: tuple[tuple[int, bytes, int, int, bool], ...],
        signals: tuple[tuple[int, tuple[bytes, ...], tuple[bytes, ...], bool], ...],
        plain: tuple[bytes, ...],
        plain_folded: tuple[bytes, ...],
    ) -> None: ...
    def may_contain(self, value: Buffer, /) -> bool: ...

def scan_rows(
    data: Buffer, pos: int, end: int, max_message: int, gate: Gate | None, /
) -> tuple[int, int, int]: ...
def scan_copy(
    data: Buffer, pos: int, end: int, max_message: int, gate: Gate, text_format: bool, /
) -> tuple[int, int]: ...
def scan_mysql_rows(
    data: Buffer, pos: int, end: int, max_payload: int, seq: int, gate: Gate | None, /
) -> tuple[int, int, int, int]: ...
def capture_rows(
    data: Buffer,
    pos: int,
    end: int,
    max_message: int,
    gate: Gate | None,
    formats: list[int],
    rows: list[list[str | None]],
    room_rows: int,
    room_bytes: int,
    /,
) -> tuple[int, int, int, int]: ...
def capture_mysql_rows(
    data: Buffer,
    pos: int,
    end: int,
    max_payload: int,
    seq: int,
    gate: Gate | None,
    ncols: int,
    rows: list[list[str | None]],
    room_rows: int,
    room_bytes: int,
    types: bytes | None = None,
    /,
) -> tuple[int, int, int, int, int]: ...
def mysql_binary_cells(
    payload: Buffer, types: bytes, /
) -> tuple[list[str | None], int] | None: ...
def pg_cells(msg: Buffer, formats: list[int], /) -> tuple[list[str | None], int] | None: ...
def mysql_text_cells(
    payload: Buffer, ncols: int, /
) -> tuple[list[str | None], int] | None: ...
def pg_bind(
    msg: Buffer, /
) -> tuple[str, str, list[str | bytes | None], list[int], bool] | None: ...
def pg_text_key(sql: str, /) -> str | None: ...
