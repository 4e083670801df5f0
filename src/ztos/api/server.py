"""Serving the API over TLS with optional client certificates (mTLS).

uvicorn does not put the TLS peer certificate into the ASGI scope, so a small
subclass of its h11 protocol reads it from the connection's SSL object and
adds it to every request scope of that connection. The TLS layer itself
verifies client certificates against the network CA (CERT_OPTIONAL: enrolment
comes without one); revocation and roles are checked per request.

Stopping (SIGTERM or SIGINT): uvicorn stops accepting, then waits for open
requests. Agents and dashboards hold long-polls and streams open, so before
that wait ``ControllerServer`` closes the directory's change signal: every
watch answers at once with what it has, every stream ends, and the process
exits 0 instead of cancelling them after the graceful-shutdown timeout.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ztos import pki
from ztos.api.app import create_app
from ztos.api.auth import PEER_CERT_SCOPE_KEY
from ztos.api.routes.watch import watch_stats
from ztos.controller import Controller
from ztos.directory import ChangeSignal
from ztos.errors import InvalidInput, Unreachable

log = logging.getLogger("ztos.controller")
SERVER_CERT_TTL = timedelta(days=30)


class PeerCertProtocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        inner = self.app

        async def with_peer_cert(scope: Any, receive: Any, send: Any) -> None:
            scope[PEER_CERT_SCOPE_KEY] = der
            await inner(scope, receive, send)

        self.app = with_peer_cert


def parse_listen(listen: str) -> tuple[str, int]:
    """``[::]:8443``, ``127.0.0.1:8443`` or ``:8443`` -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"--listen {listen!r} must be HOST:PORT, e.g. [::]:8443")
    return host.strip("[]") or "::", int(port)


def write_server_identity(ca: pki.CertificateAuthority, pki_dir: Path, names: list[str]) -> None:
    """A fresh server certificate for every start, valid for ``names``."""
    key = pki.generate_private_key()
    cert = ca.issue_server(key.public_key(), names, SERVER_CERT_TTL)
    pki.write_private(pki_dir / "server.key", pki.key_to_pem(key))
    (pki_dir / "server.crt").write_text(pki.cert_to_pem(cert))


def build_config(controller: Controller, pki_dir: Path, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(controller),
        host=host,
        port=port,
        http=PeerCertProtocol,
        ssl_certfile=str(pki_dir / "server.crt"),
        ssl_keyfile=str(pki_dir / "server.key"),
        ssl_ca_certs=str(pki_dir / "ca.crt"),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        log_level="warning",
        timeout_keep_alive=30,
        # Agents hold long-polls and keep-alive connections; do not wait for them on stop.
        timeout_graceful_shutdown=1,
    )


class ControllerServer(uvicorn.Server):
    """uvicorn's server that answers its watchers before waiting for them to finish."""

    def __init__(self, config: uvicorn.Config, changes: ChangeSignal) -> None:
        super().__init__(config)
        self.changes = changes
        self.watches_answered = 0

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.watches_answered = watch_stats(self.config.app).open
        self.changes.close()
        await super().shutdown(sockets)


class NothingCancelled(logging.Filter):
    """Drop uvicorn's "Cancel 0 running task(s), timeout graceful shutdown exceeded".

    With every watch answered, what uvicorn still waits for are TLS close
    handshakes with idle keep-alive clients, which never answer them; nothing
    is cut off, so the line would only alarm. A non-zero count still shows.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Cancel %s running task") and record.args == (0,))


@contextmanager
def stop_signals_recorded(stopped_by: list[str]) -> Iterator[None]:
    """Let a stop signal end ``serve`` normally (exit 0) rather than kill the process.

    uvicorn hands each signal it handled to the handler that was there before
    it (by default: die of SIGTERM, KeyboardInterrupt on SIGINT); this one
    only records its name.
    """

    def record(signum: int, _frame: object) -> None:
        stopped_by.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, record) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(controller: Controller, pki_dir: Path, listen: str, server_names: list[str]) -> str:
    """Serve until a stop signal; returns one line saying why and how it stopped."""
    host, port = parse_listen(listen)
    names = sorted({"localhost", "127.0.0.1", "::1", *server_names})
    write_server_identity(controller.ca, pki_dir, names)
    log.info("controller listening on %s (TLS names: %s)", listen, ", ".join(names))
    server = ControllerServer(build_config(controller, pki_dir, host, port), controller.change_signal())
    logging.getLogger("uvicorn.error").addFilter(NothingCancelled())
    stopped_by: list[str] = []
    with stop_signals_recorded(stopped_by):
        server.run(sockets=[listening_socket(host, port)])
    why = stopped_by[0] if stopped_by else "request"
    return f"controller stopped ({why}): {server.watches_answered} open watch(es) answered"


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind ourselves: asyncio makes ``[::]`` IPv6-only, but operators expect
    ``[::]:8443`` to accept IPv4 clients too (dual stack)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6 and host == "::":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unreachable(f"cannot listen on [{host}]:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock
