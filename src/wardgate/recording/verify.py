"""Verification of recordings: does what is stored still say what the gateway wrote?

Owns ``Verifier.verify_session`` (one session's chain, signed head and global-log
entries) and ``Verifier.verify_all`` (the global log from the latest retention checkpoint,
every session, sessions the log names that no longer exist, and an optional external
anchor). Problems are sentences naming the first broken event, entry or session and the
likely cause, e.g. ``session ses_7f..: event seq 12 hash mismatch (content modified:
payload, type or ts)``. A report is ``ok`` only when there are no problems.

Verification reads only; it never repairs. Trust comes from the ``KeyRing`` handed in
(built from key files, never from the store).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select

from wardgate.recording.chain import (
    GENESIS_HASH,
    chain_hash,
    checkpoint_message,
    global_entry_bytes,
    global_entry_message,
    head_message,
)
from wardgate.recording.events import canonical_json, envelope_bytes, format_ts
from wardgate.recording.keys import KeyRing
from wardgate.recording.models import EVENTS, GLOBAL_LOG, SESSIONS
from wardgate.recording.store import (
    COLUMN_LIMITS,
    CheckpointRow,
    GlobalEntry,
    PayloadError,
    SessionSummary,
    column_text,
    iter_event_rows,
    iter_global_log,
    latest_checkpoint,
    load_session,
    parse_payload,
)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The verdict on one session."""

    session_id: str
    ok: bool
    status: str | None  # None: the session row is missing
    events_checked: int
    last_seq: int  # the last event that verified
    problems: tuple[str, ...] = ()

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None


@dataclass(frozen=True, slots=True)
class GlobalHead:
    """The newest global-log entry: publish it elsewhere (anchor) to detect rollbacks."""

    position: int
    hash: str
    signature: str
    key_id: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "hash": self.hash,
            "signature": self.signature,
            "key_id": self.key_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlobalHead:
        return cls(
            position=int(data["position"]),
            hash=str(data["hash"]),
            signature=str(data.get("signature", "")),
            key_id=str(data.get("key_id", "")),
        )


@dataclass(frozen=True, slots=True)
class AuditReport:
    """The verdict on the whole store."""

    ok: bool
    sessions_checked: int
    sessions_failed: int
    global_entries_checked: int
    checkpoint_position: int | None
    head: GlobalHead | None
    problems: tuple[str, ...] = ()
    sessions: tuple[VerifyReport, ...] = field(default=(), repr=False)

    @property
    def first_problem(self) -> str | None:
        return self.problems[0] if self.problems else None


def _short(hex_value: str) -> str:
    return hex_value[:12] + ".."


class Verifier:
    """Checks recordings in a store against a ring of trusted public keys."""

    def __init__(self, engine: Engine, keyring: KeyRing) -> None:
        self._engine = engine
        self._keyring = keyring

    # ------------------------------------------------------------------ one session

    def verify_session(self, session_id: str) -> VerifyReport:
        with self._engine.connect() as conn:
            cp = latest_checkpoint(conn)
            return self._verify_session(conn, session_id, cp, entries_checked=False)

    def _verify_session(
        self,
        conn: Connection,
        session_id: str,
        cp: CheckpointRow | None,
        *,
        entries_checked: bool,
    ) -> VerifyReport:
        s = load_session(conn, session_id)
        if s is None:
            refs = [
                int(p)
                for (p,) in conn.execute(
                    select(GLOBAL_LOG.c.position)
                    .where(GLOBAL_LOG.c.session_id == session_id)
                    .order_by(GLOBAL_LOG.c.position)
                )
            ]
            if refs:
                where = ", ".join(str(p) for p in refs)
                problem = (
                    f"session {session_id}: missing from rec_sessions, but global log "
                    f"position {where} records it (session deleted)"
                )
            else:
                problem = f"session {session_id}: no such recorded session"
            return VerifyReport(session_id, False, None, 0, 0, (problem,))

        prefix = f"session {session_id}: "
        problems: list[str] = []
        chain_problem, checked, last_ok, start = self._walk_chain(conn, s)
        if chain_problem is not None:
            problems.append(prefix + chain_problem)

        verdict = self._keyring.check(
            s.key_id, s.signature, head_message(s.id, s.last_seq, s.head_hash, s.status)
        )
        if verdict == "unknown-key":
            problems.append(
                prefix + f"head is signed with unknown key id {s.key_id} (add the public key "
                "that signed it to recording.trusted_public_keys, or the row was forged)"
            )
        elif verdict == "bad":
            problems.append(
                prefix + f"head signature does not verify (rec_sessions last_seq={s.last_seq}, "
                f"head_hash or status={s.status!r} modified)"
            )

        if start is not None:
            for column, recorded in (("principal", s.principal), ("target", s.target)):
                if column_text(start.get(column), COLUMN_LIMITS[column]) != recorded:
                    problems.append(
                        prefix + f"rec_sessions.{column} is {recorded!r} but the recorded "
                        f"session.start says {start.get(column)!r} (session row modified)"
                    )

        problems.extend(prefix + p for p in self._check_global_refs(conn, s, cp, entries_checked))
        return VerifyReport(session_id, not problems, s.status, checked, last_ok, tuple(problems))

    def _walk_chain(
        self, conn: Connection, s: SessionSummary
    ) -> tuple[str | None, int, int, dict[str, Any] | None]:
        """Walk the events in seq order; returns (first problem, checked, last ok seq,
        session.start payload)."""
        running = GENESIS_HASH
        expected = 1
        start: dict[str, Any] | None = None
        rows: Iterator[Any] = iter_event_rows(conn, s.id)
        row = next(rows, None)
        while row is not None:
            nxt = next(rows, None)
            seq = int(row.seq)
            if seq > s.last_seq:
                if s.status == "open":
                    # Flushed after the head we read was signed: a live session. Not yet
                    # covered by a signature, so not verified, and not an error.
                    break
                return (
                    f"event seq {seq} was recorded after the session was sealed at seq "
                    f"{s.last_seq} (event appended after sealing)",
                    expected - 1,
                    expected - 1,
                    start,
                )
            if seq != expected:
                missing = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
                return (
                    f"event seq {missing} missing (deleted): stored events jump from seq "
                    f"{expected - 1} to seq {seq}",
                    expected - 1,
                    expected - 1,
                    start,
                )
            if row.prev_hash != running:
                other = conn.execute(
                    select(EVENTS.c.seq).where(
                        EVENTS.c.session_id == s.id, EVENTS.c.hash == row.prev_hash
                    )
                ).scalar()
                if other is not None and int(other) != seq - 1:
                    why = (
                        f"event seq {seq} is out of order: it chains after seq {other}, not "
                        f"after seq {seq - 1} (events reordered)"
                    )
                else:
                    why = (
                        f"event seq {seq}: prev_hash does not match the hash of seq {seq - 1} "
                        "(prev_hash modified, or an event before it replaced)"
                    )
                return why, expected - 1, expected - 1, start
            try:
                payload = parse_payload(row.payload)
            except PayloadError as exc:
                return (
                    f"event seq {seq}: payload is not a JSON object ({exc}) (payload modified)",
                    expected - 1,
                    expected - 1,
                    start,
                )
            recomputed = chain_hash(
                running,
                envelope_bytes(s.id, seq, format_ts(row.ts), row.type, canonical_json(payload)),
            )
            if recomputed != row.hash:
                if nxt is not None and int(nxt.seq) == seq + 1:
                    successor: str | None = nxt.prev_hash
                elif seq == s.last_seq:
                    successor = s.head_hash
                else:
                    successor = None
                if successor == row.hash:
                    what = "content modified: payload, type or ts"
                elif successor == recomputed:
                    what = "stored hash modified"
                else:
                    what = "content and hash modified"
                return (
                    f"event seq {seq} hash mismatch ({what})",
                    expected - 1,
                    expected - 1,
                    start,
                )
            if seq == 1:
                if row.type != "session.start":
                    return (
                        f"event seq 1 is a {row.type} event, not session.start",
                        0,
                        0,
                        start,
                    )
                start = payload
            running = row.hash
            expected += 1
            row = nxt

        last = expected - 1
        if last < s.last_seq:
            gone = str(s.last_seq) if last + 1 == s.last_seq else f"{last + 1}..{s.last_seq}"
            return (
                f"events end at seq {last} but the signed head says last seq {s.last_seq} "
                f"(tail truncated: seq {gone} deleted)",
                last,
                last,
                start,
            )
        if running != s.head_hash:
            return (
                f"the hash of event seq {last} ({_short(running)}) is not the signed head hash "
                f"({_short(s.head_hash)}) (events or rec_sessions.head_hash modified)",
                last,
                last,
                start,
            )
        return None, last, last, start

    def _check_global_refs(
        self,
        conn: Connection,
        s: SessionSummary,
        cp: CheckpointRow | None,
        entries_checked: bool,
    ) -> list[str]:
        """The session's open (and seal) entries exist and say what the session says.
        ``entries_checked``: the caller already checked every entry's hash and signature."""
        problems: list[str] = []
        refs: list[tuple[str, int | None, str, int, str]] = [
            ("open", s.open_position, "open", 0, GENESIS_HASH)
        ]
        if s.status != "open":
            refs.append(("seal", s.seal_position, s.status, s.last_seq, s.head_hash))
        for what, position, kind, last_seq, head in refs:
            if position is None:
                problems.append(
                    f"has no global log {what} position (rec_sessions modified, or the row "
                    "was inserted outside the gateway)"
                )
                continue
            if cp is not None and position <= cp.position:
                continue  # purged by retention; the checkpoint vouches for it
            row = conn.execute(select(GLOBAL_LOG).where(GLOBAL_LOG.c.position == position)).first()
            if row is None:
                problems.append(
                    f"{what} is recorded at global log position {position}, which is missing "
                    "(global log entry deleted)"
                )
                continue
            if (
                row.session_id != s.id
                or row.kind != kind
                or int(row.last_seq) != last_seq
                or row.head_hash != head
            ):
                problems.append(
                    f"global log position {position} does not match the session's {what} "
                    f"(it says session {row.session_id} {row.kind} at seq {row.last_seq}; "
                    "entry or session row modified)"
                )
                continue
            if not entries_checked:
                entry_problem = self._check_entry_content(_entry(row))
                if entry_problem is not None:
                    problems.append(entry_problem)
        return problems

    def _check_entry_content(self, e: GlobalEntry) -> str | None:
        """The entry's own hash (given its stored prev_hash) and signature."""
        digest = chain_hash(
            e.prev_hash,
            global_entry_bytes(
                position=e.position,
                session_id=e.session_id,
                kind=e.kind,
                last_seq=e.last_seq,
                head_hash=e.head_hash,
                ts=e.ts,
            ),
        )
        if digest != e.hash:
            return f"global log position {e.position} hash mismatch (entry modified)"
        message = global_entry_message(e.position, e.hash)
        verdict = self._keyring.check(e.key_id, e.signature, message)
        if verdict == "unknown-key":
            return (
                f"global log position {e.position} is signed with unknown key id {e.key_id} "
                "(add its public key to recording.trusted_public_keys, or the entry was forged)"
            )
        if verdict == "bad":
            return f"global log position {e.position} signature does not verify (entry modified)"
        return None

    # ------------------------------------------------------------------ whole store

    def global_head(self) -> GlobalHead | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(GLOBAL_LOG).order_by(GLOBAL_LOG.c.position.desc()).limit(1)
            ).first()
        if row is None:
            return None
        return GlobalHead(int(row.position), row.hash, row.signature, row.key_id)

    def verify_all(self, *, anchor: GlobalHead | None = None) -> AuditReport:
        """Everything: checkpoint, global log, every session, missing sessions, anchor."""
        problems: list[str] = []
        with self._engine.connect() as conn:
            cp = latest_checkpoint(conn)
            if cp is not None:
                verdict = self._keyring.check(
                    cp.key_id, cp.signature, checkpoint_message(cp.position, cp.hash)
                )
                if verdict != "ok":
                    why = (
                        f"unknown key id {cp.key_id}"
                        if verdict == "unknown-key"
                        else "signature does not verify"
                    )
                    problems.append(
                        f"retention checkpoint at global log position {cp.position}: {why} "
                        "(checkpoint modified or forged)"
                    )
            expected = 1 if cp is None else cp.position + 1
            running = GENESIS_HASH if cp is None else cp.hash
            checked = 0
            last: GlobalEntry | None = None
            referenced: dict[str, list[int]] = {}
            for e in iter_global_log(conn):
                checked += 1
                if e.position < expected:
                    problems.append(
                        f"global log position {e.position} is at or before the retention "
                        f"checkpoint (position {expected - 1}) (checkpoint or log modified)"
                    )
                elif e.position > expected:
                    gone = (
                        str(expected)
                        if e.position == expected + 1
                        else f"{expected}..{e.position - 1}"
                    )
                    problems.append(
                        f"global log position {gone} missing (entry deleted): the log jumps "
                        f"from position {expected - 1} to {e.position}"
                    )
                elif e.prev_hash != running:
                    problems.append(
                        f"global log position {e.position}: prev_hash does not chain onto "
                        f"position {e.position - 1} (entry modified or replaced)"
                    )
                entry_problem = self._check_entry_content(e)
                if entry_problem is not None:
                    problems.append(entry_problem)
                referenced.setdefault(e.session_id, []).append(e.position)
                # Resynchronise on the stored entry so later, independent damage shows too.
                running = e.hash
                expected = e.position + 1
                last = e
            head = (
                None
                if last is None
                else GlobalHead(last.position, last.hash, last.signature, last.key_id)
            )

            if anchor is not None:
                problems.extend(self._check_anchor(conn, anchor, head))

            session_ids = [
                sid
                for (sid,) in conn.execute(
                    select(SESSIONS.c.id).order_by(
                        SESSIONS.c.open_position, SESSIONS.c.started_at, SESSIONS.c.id
                    )
                )
            ]
            present = set(session_ids)
            for sid, positions in sorted(referenced.items(), key=lambda kv: kv[1][0]):
                if sid not in present:
                    where = ", ".join(str(p) for p in positions)
                    problems.append(
                        f"global log position {where} records session {sid}, which is missing "
                        "from rec_sessions (session deleted)"
                    )
            reports: list[VerifyReport] = []
            for sid in session_ids:
                report = self._verify_session(conn, sid, cp, entries_checked=True)
                reports.append(report)
                problems.extend(report.problems)

        failed = sum(1 for r in reports if not r.ok)
        return AuditReport(
            ok=not problems,
            sessions_checked=len(reports),
            sessions_failed=failed,
            global_entries_checked=checked,
            checkpoint_position=None if cp is None else cp.position,
            head=head,
            problems=tuple(problems),
            sessions=tuple(reports),
        )

    def _check_anchor(
        self, conn: Connection, anchor: GlobalHead, head: GlobalHead | None
    ) -> list[str]:
        if head is None or head.position < anchor.position:
            ends = "is empty" if head is None else f"ends at position {head.position}"
            return [
                f"global log {ends} but the anchored head is position {anchor.position} "
                "(log truncated or the store rolled back to an older state)"
            ]
        stored = conn.execute(
            select(GLOBAL_LOG.c.hash).where(GLOBAL_LOG.c.position == anchor.position)
        ).scalar()
        if stored is None:
            return [
                f"the anchored head position {anchor.position} is not in the global log "
                "(purged by retention, or deleted)"
            ]
        if stored != anchor.hash:
            return [
                f"global log position {anchor.position} has hash {_short(str(stored))} but the "
                f"anchored head says {_short(anchor.hash)} (log rewritten)"
            ]
        return []


def _entry(row: Any) -> GlobalEntry:
    return GlobalEntry(
        position=int(row.position),
        session_id=row.session_id,
        kind=row.kind,
        last_seq=int(row.last_seq),
        head_hash=row.head_hash,
        ts=row.ts,
        prev_hash=row.prev_hash,
        hash=row.hash,
        signature=row.signature,
        key_id=row.key_id,
    )
