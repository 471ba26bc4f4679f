"""The ``wardgate`` command. Data goes to stdout (a token, a table, JSON); chatter to stderr."""

from __future__ import annotations

import json
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from wardgate.config import GatewayConfig, load_config, parse_duration
from wardgate.core.errors import WardgateError
from wardgate.storage.db import make_engine, session_factory, upgrade


class Context:
    def __init__(self, config_path: str) -> None:
        self.config_path = config_path
        self._cfg: GatewayConfig | None = None

    @property
    def cfg(self) -> GatewayConfig:
        if self._cfg is None:
            self._cfg = load_config(self.config_path)
        return self._cfg

    def db(self) -> Any:
        engine = make_engine(self.cfg.state.url)
        upgrade(engine)
        return session_factory(engine)


pass_ctx = click.make_pass_decorator(Context)


def _fail(e: Exception) -> None:
    click.echo(f"wardgate: {e}", err=True)
    sys.exit(2)


@click.group()
@click.option(
    "--config",
    "-c",
    envvar="WARDGATE_CONFIG",
    default="wardgate.yaml",
    show_default=True,
    help="YAML configuration file.",
)
@click.option("--log-level", default="INFO", envvar="WARDGATE_LOG_LEVEL", show_default=True)
@click.pass_context
def cli(ctx: click.Context, config: str, log_level: str) -> None:
    """wardgate: identity-aware access gateway."""
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx.obj = Context(config)


@cli.command()
@click.option(
    "--workers", default=1, show_default=True, help="Processes sharing the ports (SO_REUSEPORT)."
)
@pass_ctx
def serve(c: Context, workers: int) -> None:
    """Run the gateway: PostgreSQL/MySQL listeners and the REST API."""
    try:
        cfg = c.cfg
    except WardgateError as e:
        _fail(e)
        return
    from wardgate.server.run import run

    if workers <= 1:
        run(cfg)
        return
    from wardgate.server.workers import run_workers

    run_workers(cfg, workers)


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("check")
@pass_ctx
def config_check(c: Context) -> None:
    """Validate the config file; errors name the key and line."""
    try:
        cfg = c.cfg
    except WardgateError as e:
        _fail(e)
        return
    click.echo(f"ok: {len(cfg.targets)} target(s): {', '.join(sorted(cfg.targets))}")


@cli.group()
def db() -> None:
    """State store maintenance."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(c: Context) -> None:
    """Apply schema migrations to the state store."""
    upgrade(make_engine(c.cfg.state.url))
    click.echo("state store is at the newest schema", err=True)


# ----------------------------------------------------------------------------- tokens
@cli.group()
def token() -> None:
    """Issue, list and revoke gateway tokens."""


def _tokens(c: Context) -> Any:
    from wardgate.authn.tokens import TokenService

    return TokenService(c.db())


@token.command("create")
@click.argument("identity")
@click.option(
    "--group", "-g", "groups", multiple=True, help="Group the token carries (repeatable)."
)
@click.option(
    "--ttl", default=None, help="Lifetime, e.g. 15m, 1h, 7d (default: identity.tokens.default_ttl)."
)
@click.option("--description", default="")
@pass_ctx
def token_create(
    c: Context, identity: str, groups: tuple[str, ...], ttl: str | None, description: str
) -> None:
    """Create IDENTITY if needed and print a new token (and nothing else) on stdout."""
    try:
        tok_cfg = c.cfg.identity.tokens
        issued = _tokens(c).create(
            identity,
            list(groups),
            timedelta(seconds=parse_duration(ttl or tok_cfg.default_ttl)),
            max_ttl=timedelta(seconds=parse_duration(tok_cfg.max_ttl)),
            description=description,
        )
    except (WardgateError, ValueError) as e:
        _fail(e)
        return
    click.echo(issued.token)
    click.echo(
        f"token {issued.id} for {issued.identity} groups={','.join(issued.groups) or '-'} "
        f"expires {issued.expires_at.isoformat(timespec='seconds')}",
        err=True,
    )


@token.command("list")
@click.option("--identity", default=None)
@click.option("--all", "include_all", is_flag=True, help="Include expired and revoked tokens.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def token_list(c: Context, identity: str | None, include_all: bool, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    rows = _tokens(c).list_tokens(identity, include_inactive=include_all)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "id": t.id,
                        "identity": t.identity,
                        "groups": list(t.groups),
                        "created_at": t.created_at.isoformat(),
                        "expires_at": t.expires_at.isoformat(),
                        "status": t.status,
                    }
                    for t in rows
                ],
                indent=2,
            )
        )
        return
    click.echo(f"{'ID':<14}{'IDENTITY':<20}{'GROUPS':<28}{'EXPIRES':<27}STATUS")
    for t in rows:
        click.echo(
            f"{t.id:<14}{t.identity:<20}{','.join(t.groups) or '-':<28}"
            f"{t.expires_at.isoformat(timespec='seconds'):<27}{t.status}"
        )


@token.command("revoke")
@click.argument("token_id")
@pass_ctx
def token_revoke(c: Context, token_id: str) -> None:
    """Revoke a token; live sessions using it end within seconds."""
    if not _tokens(c).revoke(token_id):
        _fail(WardgateError(f"no token with id {token_id}"))
    click.echo(f"revoked {token_id}", err=True)


# --------------------------------------------------------------------------- identities
@cli.group()
def identity() -> None:
    """Manage identities and their groups."""


@identity.command("set-groups")
@click.argument("name")
@click.argument("groups", nargs=-1)
@pass_ctx
def identity_set_groups(c: Context, name: str, groups: tuple[str, ...]) -> None:
    """Replace NAME's groups; tokens lose groups that are removed, live sessions end."""
    try:
        _tokens(c).set_groups(name, list(groups))
    except WardgateError as e:
        _fail(e)
    click.echo(f"{name}: groups = {', '.join(sorted(groups)) or '(none)'}", err=True)


@identity.command("disable")
@click.argument("name")
@pass_ctx
def identity_disable(c: Context, name: str) -> None:
    """Disable NAME: its tokens stop working and its live sessions end."""
    try:
        _tokens(c).set_disabled(name, True)
    except WardgateError as e:
        _fail(e)


# ----------------------------------------------------------------------------- sessions
@cli.group()
def sessions() -> None:
    """Session history and live sessions."""


@sessions.command("list")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def sessions_list(c: Context, limit: int, as_json: bool) -> None:
    """Recent sessions from the ledger, newest first."""
    from wardgate.api.app import session_row
    from wardgate.storage.models import SessionRecord

    with c.db()() as db:
        rows = [
            session_row(r)
            for r in db.scalars(
                select(SessionRecord).order_by(SessionRecord.started_at.desc()).limit(limit)
            )
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'ID':<26}{'WHO':<16}{'TARGET':<14}{'FROM':<22}{'STMTS':>6}  {'STARTED':<26}END")
    for r in rows:
        click.echo(
            f"{r['id']:<26}{r['principal'] or '-':<16}{r['target'] or '-':<14}"
            f"{r['client_addr']:<22}"
            f"{r['statements']:>6}  {(r['started_at'] or '')[:25]:<26}{r['end_reason'] or 'live'}"
        )


@sessions.command("kill")
@click.argument("session_id")
@click.option("--reason", default="killed by an administrator", show_default=True)
@click.option("--by", "by", default=None, help="Who asks (default: the OS user).")
@pass_ctx
def sessions_kill(c: Context, session_id: str, reason: str, by: str | None) -> None:
    """End a live session on whichever gateway node holds it (within about a second)."""
    import getpass

    from wardgate.storage.kills import record_kill_request

    if not record_kill_request(c.db(), session_id, by or f"cli:{getpass.getuser()}", reason):
        _fail(WardgateError(f"no session {session_id}"))
    click.echo(f"kill requested for {session_id}", err=True)


from wardgate.cli.approvals import approvals  # noqa: E402
from wardgate.cli.audit import audit, register_session_commands  # noqa: E402

cli.add_command(approvals)
cli.add_command(audit)
register_session_commands(sessions)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except WardgateError as e:
        _fail(e)


if __name__ == "__main__":
    main()

_ = Path
