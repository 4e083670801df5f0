"""The embedded authoritative DNS server: asyncio UDP and TCP loops around ``DnsEngine``.

Why it exists: a one-machine ZTOS needs secure discovery without installing
BIND (DESIGN principle 4). Everything that decides an answer lives in
``engine.DnsEngine`` (no I/O); this module only moves bytes: one datagram
protocol for UDP, one stream handler per TCP connection (RFC 1035 2-byte
length framing, several requests per connection, idle timeout), persistence
through a ``ZoneStore``, and a helper to run the server on its own event loop
in a background thread (tests, benchmarks, and synchronous callers).

Concurrency: the engine is only ever touched from the loop's thread, so
requests are handled one at a time and an update is atomic with respect to
queries. ``ThreadedDnsServer`` marshals ``add_key``/``remove_key`` calls onto
that thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar, cast

from ztos.discovery import keys as keys_mod
from ztos.discovery.engine import Clock, DnsEngine, EngineSettings, ReplayGuard
from ztos.discovery.policy import Grant, Policy
from ztos.discovery.store import ZoneStore, load_zone, save_zone
from ztos.discovery.zone import Zone
from ztos.errors import Unreachable

log = logging.getLogger("ztos.discovery.server")

T = TypeVar("T")
TCP_IDLE_TIMEOUT = 10.0
BIND_ATTEMPTS = 20
THREAD_START_TIMEOUT = 10.0
LENGTH = struct.Struct("!H")


class Authority(Protocol):
    """A running authoritative server whose TSIG keys can be changed: what the controller drives.

    ``ThreadedDnsServer`` (embedded) and ``bind.BindServer`` both satisfy it,
    and the contract tests run against both through it.
    """

    @property
    def address(self) -> tuple[str, int]: ...

    def add_key(self, name: str, secret: str, grants: Iterable[Grant] = ()) -> None: ...

    def remove_key(self, name: str) -> None: ...

    def stop(self) -> None: ...


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, engine: DnsEngine) -> None:
        self.engine = engine
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        assert self.transport is not None
        for wire in self.engine.handle(data, str(addr[0]), tcp=False):
            self.transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class DnsServer:
    """One zone served over UDP and TCP on one address.

    ``keys`` maps key names to base64 secrets (or is a dnspython keyring);
    ``store`` (optional) is loaded at construction (a stored zone wins over
    ``zone``) and saved on every change; ``replays`` (optional) remembers seen
    updates where a restart still finds them (default: in memory).
    """

    def __init__(
        self,
        zone: Zone,
        keys: Mapping[str, str] | keys_mod.Keyring,
        policy: Policy,
        *,
        store: ZoneStore | None = None,
        settings: EngineSettings | None = None,
        clock: Clock = time.time,
        replays: ReplayGuard | None = None,
    ) -> None:
        self.store = store
        initial = load_zone(store, zone) if store is not None else zone
        persist = (lambda z: save_zone(store, z)) if store is not None else None
        self.engine = DnsEngine(
            initial, keys_mod.keyring(keys), policy, settings, clock=clock, persist=persist, replays=replays
        )
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address: tuple[str, int] | None = None

    @property
    def zone(self) -> Zone:
        return self.engine.zone

    def add_key(self, name: str, secret: str, grants: Iterable[Grant] = ()) -> None:
        self.engine.add_key(name, secret, grants)

    def remove_key(self, name: str) -> None:
        self.engine.remove_key(name)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (UDP and TCP; port 0 picks one free for both)."""
        for _ in range(BIND_ATTEMPTS if port == 0 else 1):
            with contextlib.suppress(_PortTaken):
                return await self._bind(host, port)
        raise Unreachable(f"could not find a port free for both UDP and TCP on {host}")

    async def _bind(self, host: str, port: int) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        try:
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self.engine), local_addr=(host, port)
            )
        except OSError as exc:
            raise Unreachable(f"cannot listen on UDP {host}:{port}: {exc.strerror}") from exc
        bound = udp.get_extra_info("sockname")[1]
        try:
            self._tcp = await asyncio.start_server(self._tcp_client, host, bound)
        except OSError as exc:
            udp.close()
            if port == 0 and exc.errno == errno.EADDRINUSE:
                raise _PortTaken from exc
            raise Unreachable(f"cannot listen on TCP {host}:{bound}: {exc.strerror}") from exc
        self._udp = udp
        self.address = (host, int(bound))
        log.info("serving %s on %s port %d", self.zone.origin, host, bound)
        return self.address

    async def stop(self) -> None:
        """Close both listeners and every open TCP connection; waits for the handlers to end."""
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
        self._udp = self._tcp = None

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = str(writer.get_extra_info("peername")[0])
        try:
            while (request := await _read_frame(reader)) is not None:
                for wire in self.engine.handle(request, peer, tcp=True):
                    writer.write(LENGTH.pack(len(wire)) + wire)
                await writer.drain()
        except ConnectionError:
            pass  # the client went away; cancellation (stop) propagates
        finally:
            self._tasks.discard(task)
            writer.close()

    def run_in_thread(self, host: str = "127.0.0.1", port: int = 0) -> ThreadedDnsServer:
        """Start on a private event loop in a daemon thread; stop it with ``.stop()`` or ``with``."""
        return ThreadedDnsServer(self, host, port).start()


class _PortTaken(Exception):
    pass


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One length-prefixed message, or ``None`` at EOF, on a short frame or after the idle timeout."""
    try:
        async with asyncio.timeout(TCP_IDLE_TIMEOUT):
            (length,) = LENGTH.unpack(await reader.readexactly(LENGTH.size))
            return await reader.readexactly(length)
    except (asyncio.IncompleteReadError, TimeoutError):
        return None


class ThreadedDnsServer:
    """A ``DnsServer`` running on its own loop in a background thread."""

    def __init__(self, server: DnsServer, host: str, port: int) -> None:
        self.server = server
        self._where = (host, port)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ztos-dns", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        assert self.server.address is not None
        return self.server.address

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def zone(self) -> Zone:
        return self.call(lambda: self.server.zone)

    def start(self) -> ThreadedDnsServer:
        self._thread.start()
        if not self._ready.wait(THREAD_START_TIMEOUT):
            raise Unreachable("the embedded DNS server did not start in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self.server.start(*self._where))
        except BaseException as exc:
            self._error = exc
        self._ready.set()
        if self._error is None:
            self._loop.run_forever()
            self._loop.run_until_complete(self.server.stop())
        self._loop.close()

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop thread and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=THREAD_START_TIMEOUT)

    def add_key(self, name: str, secret: str, grants: Iterable[Grant] = ()) -> None:
        grants = tuple(grants)
        self.call(lambda: self.server.add_key(name, secret, grants))

    def remove_key(self, name: str) -> None:
        self.call(lambda: self.server.remove_key(name))

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(THREAD_START_TIMEOUT)

    def __enter__(self) -> ThreadedDnsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
