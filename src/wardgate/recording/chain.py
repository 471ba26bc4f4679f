"""The hash chains and the signed statements that make recordings tamper-evident.

Owns the arithmetic, not the storage:

* per-session chain: ``hash_n = SHA-256(prev_hash_n || envelope_n)``, ``prev_hash_1`` is 32
  zero bytes and ``envelope_n`` is the canonical event (see ``events``), which names the
  session, the seq, the time and the type, so an event cannot be moved to another session
  or position without changing its hash;
* session head: an ed25519 signature over (session id, last seq, head hash, status). The
  writer re-signs it on every flush while the session is open and a last time when it is
  sealed (``sealed`` on close, ``interrupted`` when recovered after a crash);
* global log: every session open and every seal is appended to one chained log whose
  entries are each signed, so deleting a whole session, or a log entry, breaks the log;
* checkpoints: the signed (position, hash) of the last global-log entry removed by a
  retention purge, so the log may start later without looking truncated.

All hashes are carried as lower-case hex. Every signed message is a canonical JSON object
with a ``kind`` naming what it is, so a signature over one kind of statement can never
be replayed as another.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Final, Literal

from wardgate.recording.events import FORMAT_VERSION, canonical_json, format_ts

GENESIS_HASH: Final = "0" * 64

SessionStatus = Literal["open", "sealed", "interrupted"]
GlobalKind = Literal["open", "sealed", "interrupted"]


def chain_hash(prev_hash: str, data: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + data).hexdigest()


def head_message(session_id: str, last_seq: int, head_hash: str, status: str) -> bytes:
    """What the session head signature covers."""
    return canonical_json(
        {
            "kind": "wardgate.session-head",
            "v": FORMAT_VERSION,
            "session": session_id,
            "last_seq": last_seq,
            "head": head_hash,
            "status": status,
        }
    ).encode()


def global_entry_bytes(
    *,
    position: int,
    session_id: str,
    kind: str,
    last_seq: int,
    head_hash: str,
    ts: datetime,
) -> bytes:
    """The canonical content of a global-log entry; its hash chains onto the previous one."""
    return canonical_json(
        {
            "kind": kind,
            "v": FORMAT_VERSION,
            "position": position,
            "session": session_id,
            "last_seq": last_seq,
            "head": head_hash,
            "ts": format_ts(ts),
        }
    ).encode()


def global_entry_message(position: int, entry_hash: str) -> bytes:
    """What a global-log entry's signature covers (its hash already covers its content)."""
    return canonical_json(
        {
            "kind": "wardgate.global-log",
            "v": FORMAT_VERSION,
            "position": position,
            "hash": entry_hash,
        }
    ).encode()


def checkpoint_message(position: int, entry_hash: str) -> bytes:
    """What a retention checkpoint's signature covers: the last purged global entry."""
    return canonical_json(
        {
            "kind": "wardgate.checkpoint",
            "v": FORMAT_VERSION,
            "position": position,
            "hash": entry_hash,
        }
    ).encode()
