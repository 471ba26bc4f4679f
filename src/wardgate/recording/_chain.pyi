from datetime import datetime
from typing import Any

def chain_event(
    payload: Any,
    session_id: str,
    seq: int,
    ts: str,
    event_type: str,
    version: int,
    prev_hash: str,
    /,
) -> tuple[str, str, int]: ...
def format_ts(ts: datetime, /) -> str | None: ...
def sqlite_event_params(rows: list[Any], /) -> tuple[Any, ...] | None: ...
def statement_event(
    session_id: str,
    seq: int,
    ts: str | datetime,
    version: int,
    prev_hash: str,
    n: int,
    text: str,
    path: str,
    params: Any,
    started_at: str | datetime,
    duration_us: int,
    rows: int | None,
    error_sqlstate: str | None,
    error_message: str | None,
    decision: tuple[str, str] | None,
    results: list[Any],
    /,
) -> tuple[str, str, int]: ...
