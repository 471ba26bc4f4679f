"""``wardgate serve``: listeners and the REST API on one event loop (uvloop when present)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import signal
import socket
from collections.abc import Callable

from wardgate.config import GatewayConfig
from wardgate.server.gateway import Gateway
from wardgate.server.pg_frontend import PgFrontend
from wardgate.server.watch import SessionWatcher

log = logging.getLogger("wardgate")


def _listen_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _mysql_frontend(gw: Gateway) -> Callable[[], asyncio.Protocol] | None:
    """The MySQL adapter, when this build has it."""
    try:
        module = importlib.import_module("wardgate.server.mysql_frontend")
    except ImportError:
        return None
    cls = module.MySqlFrontend
    return lambda: cls(gw)


async def serve(cfg: GatewayConfig, *, reuse_port: bool = False, api: bool = True) -> None:
    gw = Gateway(cfg)
    await gw.start()
    cancel_server = await gw.serve_cancel_socket()
    watcher = SessionWatcher(gw)
    watcher.start()
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    pg = cfg.listen.address("postgres")
    if pg is not None:
        sock = _listen_socket(pg[0], pg[1], reuse_port)
        srv = await loop.create_server(lambda: PgFrontend(gw), sock=sock)
        servers.append(srv)
        log.info("postgres listener on %s:%d", *pg)
    mysql = cfg.listen.address("mysql")
    if mysql is not None:
        factory = _mysql_frontend(gw)
        if factory is not None:
            sock = _listen_socket(mysql[0], mysql[1], reuse_port)
            servers.append(await loop.create_server(factory, sock=sock))
            log.info("mysql listener on %s:%d", *mysql)
    api_server = None
    api_task = None
    addr = cfg.listen.address("api")
    if api and addr is not None:
        import uvicorn

        from wardgate.api.app import create_app

        config = uvicorn.Config(
            create_app(gw), host=addr[0], port=addr[1], log_level="warning", lifespan="off"
        )
        api_server = uvicorn.Server(config)
        # The gateway owns SIGTERM/SIGINT: it drains sessions before the API stops.
        api_server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        api_sock = _listen_socket(addr[0], addr[1], reuse_port)
        api_task = loop.create_task(api_server.serve(sockets=[api_sock]))
        log.info("REST API on http://%s:%d (OpenAPI at /docs)", *addr)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # Everything built so far (config, policy, parsers, the API app) lives as long as the
    # process: move it out of the cyclic collector's sight. Without this every full
    # collection walks all of it, and a result's worth of new rows (recording captures
    # up to max_result_rows per statement) triggers them: ~20 % of the CPU of a
    # 2,000-row MySQL result went to the collector.
    gc.collect()
    gc.freeze()
    print("wardgate ready", flush=True)
    await stop.wait()
    log.info("shutting down")
    for srv in servers:
        srv.close()
    if cancel_server is not None:
        cancel_server.close()
    if api_server is not None:
        api_server.should_exit = True
        if api_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(api_task, 5)
    await watcher.stop()
    await gw.aclose()


def run(cfg: GatewayConfig, *, reuse_port: bool = False, api: bool = True) -> None:
    try:
        import uvloop

        uvloop.run(serve(cfg, reuse_port=reuse_port, api=api))
    except ImportError:  # pragma: no cover - uvloop is a hard dependency on Linux
        asyncio.run(serve(cfg, reuse_port=reuse_port, api=api))
