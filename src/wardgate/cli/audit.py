"""``wardgate audit`` and the recording side of ``wardgate sessions``: verify, replay, export.

Verification trusts only key files (the gateway's key and ``recording.trusted_public_keys``),
never anything stored next to the recordings it checks.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

import click

from wardgate.config import parse_duration
from wardgate.recording.keys import KeyRing, load_signing_key
from wardgate.recording.replay import (
    TranscriptRenderer,
    export_jsonl,
    follow,
    render_transcript,
)
from wardgate.recording.store import load_session
from wardgate.recording.verify import Verifier


def _engine(ctx: Any) -> Any:
    from wardgate.storage.db import make_engine, upgrade

    engine = make_engine(ctx.cfg.state.url)
    upgrade(engine)
    return engine


def _keyring(ctx: Any) -> KeyRing:
    rec = ctx.cfg.recording
    state = ctx.cfg.state.directory
    key_path = rec.key_path(state)
    if not key_path.exists():
        click.echo(
            f"wardgate: no recording key at {key_path}; has this gateway recorded anything?",
            err=True,
        )
        sys.exit(2)
    return KeyRing.for_key(load_signing_key(key_path), rec.trusted_key_paths(state))


@click.group()
def audit() -> None:
    """Prove recordings are intact."""


@audit.command("verify")
@click.argument("session_id", required=False)
@click.option("--all", "check_all", is_flag=True, help="Every session and the global log.")
@click.option(
    "--anchor",
    default=None,
    help="A previously published `audit head` JSON to check rollback against.",
)
@click.pass_obj
def audit_verify(ctx: Any, session_id: str | None, check_all: bool, anchor: str | None) -> None:
    """Exit 0 when intact; otherwise name the first broken event or session and exit 1."""
    if not session_id and not check_all:
        raise click.UsageError("give a SESSION_ID or --all")
    verifier = Verifier(_engine(ctx), _keyring(ctx))
    if session_id:
        report = verifier.verify_session(session_id)
        if report.ok:
            click.echo(
                f"ok: session {session_id} intact "
                f"({report.events_checked} events, status {report.status})"
            )
            return
        for p in report.problems:
            click.echo(f"FAIL: {p}")
        sys.exit(1)
    head = None
    if anchor:
        from wardgate.recording.verify import GlobalHead

        head = GlobalHead(**json.loads(anchor))
    audit_report = verifier.verify_all(anchor=head)
    if audit_report.ok:
        click.echo(
            f"ok: {audit_report.sessions_checked} session(s) and "
            f"{audit_report.global_entries_checked} global log entries intact"
        )
        return
    for p in audit_report.problems:
        click.echo(f"FAIL: {p}")
    sys.exit(1)


@audit.command("head")
@click.pass_obj
def audit_head(ctx: Any) -> None:
    """Print the newest signed global-log entry; publish it elsewhere to detect rollbacks."""
    head = Verifier(_engine(ctx), _keyring(ctx)).global_head()
    click.echo(json.dumps(head.to_dict() if head else None))


@audit.command("purge")
@click.option("--older-than", default=None, help="e.g. 90d (default: recording.retention)")
@click.pass_obj
def audit_purge(ctx: Any, older_than: str | None) -> None:
    """Delete recordings older than the retention period, keeping the chain verifiable."""
    from wardgate.recording.retention import purge

    period = older_than or ctx.cfg.recording.retention
    if not period:
        raise click.UsageError("no --older-than and no recording.retention configured")
    key = load_signing_key(ctx.cfg.recording.key_path(ctx.cfg.state.directory))
    report = purge(_engine(ctx), key, timedelta(seconds=parse_duration(period)))
    click.echo(str(report))


def register_session_commands(sessions: click.Group) -> None:
    @sessions.command("show")
    @click.argument("session_id")
    @click.pass_obj
    def sessions_show(ctx: Any, session_id: str) -> None:
        """The recorded transcript of a session: statements, decisions, results, timing."""
        engine = _engine(ctx)
        with engine.connect() as conn:
            if load_session(conn, session_id) is None:
                click.echo(f"wardgate: no recorded session {session_id}", err=True)
                sys.exit(2)
        click.echo(render_transcript(engine, session_id))

    @sessions.command("replay")
    @click.argument("session_id")
    @click.option(
        "--follow", "do_follow", is_flag=True, help="Keep printing a live session's events."
    )
    @click.option("--jsonl", is_flag=True, help="Export every event with its hashes as JSON Lines.")
    @click.pass_obj
    def sessions_replay(ctx: Any, session_id: str, do_follow: bool, jsonl: bool) -> None:
        """Replay a session as a transcript (or --jsonl export)."""
        engine = _engine(ctx)
        with engine.connect() as conn:
            summary = load_session(conn, session_id)
        if summary is None:
            click.echo(f"wardgate: no recorded session {session_id}", err=True)
            sys.exit(2)
        if jsonl:
            for line in export_jsonl(engine, session_id):
                click.echo(line)
            return
        if not do_follow:
            click.echo(render_transcript(engine, session_id))
            return

        async def tail() -> None:
            r = TranscriptRenderer(live=True)
            for line in r.header(summary):
                click.echo(line)
            async for ev in follow(engine, session_id):
                for line in r.feed(ev):
                    click.echo(line)
            for line in r.finish():
                click.echo(line)

        asyncio.run(tail())
