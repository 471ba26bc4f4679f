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
