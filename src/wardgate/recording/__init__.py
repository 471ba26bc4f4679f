"""Tamper-evident session recording: events, hash chains, seals, verification, replay.

The gateway records every session through a ``Recorder``; auditors verify with a
``Verifier`` and read with ``render_transcript``/``export_jsonl``/``follow``. Protocol
adapters never import the storage or chain modules directly.
"""

from wardgate.recording.config import RecordingConfig, parse_duration
from wardgate.recording.events import FORMAT_VERSION, SessionMeta, StoredEvent
from wardgate.recording.keys import KeyRing, SigningKey, load_or_create_signing_key
from wardgate.recording.replay import (
    TranscriptRenderer,
    export_jsonl,
    follow,
    render_transcript,
    session_document,
)
from wardgate.recording.retention import PurgeRefusedError, PurgeReport, purge
from wardgate.recording.store import SessionSummary, list_sessions, load_session
from wardgate.recording.verify import AuditReport, GlobalHead, Verifier, VerifyReport
from wardgate.recording.writer import (
    Recorder,
    RecorderStats,
    RecoveredSession,
    ResultCapture,
    SessionRecorder,
)

__all__ = [
    "FORMAT_VERSION",
    "AuditReport",
    "GlobalHead",
    "KeyRing",
    "PurgeRefusedError",
    "PurgeReport",
    "Recorder",
    "RecorderStats",
    "RecordingConfig",
    "RecoveredSession",
    "ResultCapture",
    "SessionMeta",
    "SessionRecorder",
    "SessionSummary",
    "SigningKey",
    "StoredEvent",
    "TranscriptRenderer",
    "Verifier",
    "VerifyReport",
    "export_jsonl",
    "follow",
    "list_sessions",
    "load_or_create_signing_key",
    "load_session",
    "parse_duration",
    "purge",
    "render_transcript",
    "session_document",
]
