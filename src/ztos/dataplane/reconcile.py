"""Observe, plan, apply: the WireGuard reconciler and its executors.

``reconcile(desired)`` reads the host (``observe``), asks the pure planner for
the difference and hands it to an executor. ``HostExecutor`` applies it through
the adapters (``links`` for netlink, ``wireguard`` for wg/UAPI), in order; the
first failing step stops the pass with ``StepFailed`` (a retryable
``ToolError`` naming the step and what was done before it), and the next pass
plans again from what is really there, so nothing stays half-configured for
longer than one interval. ``RecordingExecutor`` only records: ``ztos agent
plan`` is ``reconcile(desired, executor=RecordingExecutor())``.

Only this module (and the adapters themselves) touches adapters, so the agent
imports ``reconcile``/``teardown``/``observe`` and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from ztos.dataplane import keys, links, wireguard
from ztos.dataplane.plan import (
    AddAddress,
    AddPeer,
    AddRoute,
    CreateInterface,
    DeleteInterface,
    Operation,
    RemoveAddress,
    RemovePeer,
    RemoveRoute,
    SetListenPort,
    SetMtu,
    SetPrivateKey,
    SetUp,
    UpdatePeer,
    plan,
)
from ztos.dataplane.state import Backend, InterfaceSpec, ObservedInterface, ObservedPeer
from ztos.dataplane.wireguard import WireGuardDevice, WireGuardGo
from ztos.errors import ToolError, Unreachable, ZtosError

HANDSHAKE_POLL = 0.05


class StepFailed(ToolError):
    """One step of a plan failed; ``done`` lists the steps applied before it.

    ``retry`` is the cause's: a tool hiccup is worth another pass, a name
    clash (``Conflict``) is not until someone fixes it.
    """

    code = "dataplane_step_failed"

    def __init__(self, operation: object, done: Sequence[object], cause: ZtosError) -> None:
        super().__init__(
            f"step {len(done) + 1} `{operation}` failed: {cause.detail} "
            f"({len(done)} step(s) applied before it; the next reconcile retries)"
        )
        self.operation = operation
        self.done = tuple(done)
        self.retry = cause.retry


class Executor(Protocol):
    """Applies a plan, in order, once."""

    def apply(self, operations: Sequence[Operation]) -> None: ...


class RecordingExecutor:
    """Records plans instead of applying them: a dry run with the real code path."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def apply(self, operations: Sequence[Operation]) -> None:
        self.operations.extend(operations)


_default_launcher: WireGuardGo | None = None


def default_launcher() -> WireGuardGo:
    """The process-wide wireguard-go launcher.

    wireguard-go children belong to the process, not to one reconcile call, so
    one launcher per process holds them (and reaps them); inject your own
    where you want isolation (tests do).
    """
    global _default_launcher
    if _default_launcher is None:
        _default_launcher = WireGuardGo()
    return _default_launcher


class HostExecutor:
    """Applies operations to this host through the adapters."""

    def __init__(self, netns: str | None = None, *, launcher: WireGuardGo | None = None) -> None:
        self.netns = netns
        self.launcher = launcher or default_launcher()

    def apply(self, operations: Sequence[Operation]) -> None:
        for index, operation in enumerate(operations):
            try:
                self.apply_one(operation)
            except ZtosError as exc:
                raise StepFailed(operation, operations[:index], exc) from exc

    def apply_one(self, op: Operation) -> None:
        match op:
            case CreateInterface():
                self._create(op)
            case DeleteInterface():
                self.launcher.stop(op.interface, self.netns)
            case SetPrivateKey():
                self._device(op.interface).set_private_key(op.path)
            case SetListenPort():
                self._device(op.interface).set_listen_port(op.new)
            case AddPeer() | UpdatePeer():
                self._device(op.interface).set_peer(op.peer)
            case RemovePeer():
                self._device(op.interface).remove_peer(op.public_key)
            case _:
                self._apply_link(op)

    def _apply_link(self, op: Operation) -> None:
        match op:
            case SetMtu():
                links.set_link(op.interface, self.netns, mtu=op.new)
            case SetUp():
                links.set_link(op.interface, self.netns, up=True)
            case AddAddress():
                links.add_address(op.interface, op.address, self.netns)
            case RemoveAddress():
                links.remove_address(op.interface, op.address, self.netns)
            case AddRoute():
                links.add_route(op.interface, op.prefix, self.netns)
            case RemoveRoute():
                links.remove_route(op.interface, op.prefix, self.netns)
            case _:
                raise ToolError(f"no handler for {type(op).__name__}")

    def _create(self, op: CreateInterface) -> None:
        if op.backend is Backend.KERNEL:
            links.create_link(op.interface, "wireguard", self.netns)
        else:
            self.launcher.start(op.interface, self.netns)

    def _device(self, name: str) -> WireGuardDevice:
        device = wireguard.open_device(name, self.netns, socket_dir=self.launcher.socket_dir)
        if device is None:
            raise ToolError(f"{name}: no WireGuard device answers (was it deleted meanwhile?)")
        return device


def observe(name: str, netns: str | None = None, *, launcher: WireGuardGo | None = None) -> ObservedInterface:
    """Read the interface ``name`` from the host (links, WireGuard, ZTOS routes)."""
    socket_dir = (launcher or default_launcher()).socket_dir
    link = links.get_link(name, netns)
    if link is None:
        wireguard.check_name_free(name, netns, socket_dir=socket_dir)
        return ObservedInterface.absent(name, wireguard.detect_backend(netns))
    device = wireguard.open_device(name, netns, socket_dir=socket_dir)
    if device is None:
        backend = wireguard.detect_backend(netns)
        return ObservedInterface(name=name, exists=True, backend=backend, mtu=link.mtu)
    state = device.state()
    return ObservedInterface(
        name=name,
        exists=True,
        backend=device.backend,
        controllable=True,
        up=link.up,
        mtu=link.mtu,
        addresses=links.get_addresses(name, netns),
        routes=links.get_routes(name, netns),
        public_key=state.public_key,
        listen_port=state.listen_port,
        peers=state.peers,
    )


def reconcile(
    desired: InterfaceSpec,
    netns: str | None = None,
    executor: Executor | None = None,
    *,
    launcher: WireGuardGo | None = None,
) -> list[Operation]:
    """Make the host match ``desired``; returns the plan applied (``[]`` when converged)."""
    observed = observe(desired.name, netns, launcher=launcher)
    public_key = keys.public_key_of(keys.read_private_key(desired.private_key_path))
    operations = plan(desired, observed, public_key=public_key)
    (executor or HostExecutor(netns, launcher=launcher)).apply(operations)
    return operations


def teardown(name: str, netns: str | None = None, *, launcher: WireGuardGo | None = None) -> bool:
    """Remove the interface (and its wireguard-go); False when there was nothing."""
    return (launcher or default_launcher()).stop(name, netns)


def wait_for_handshake(
    name: str, public_key: str, netns: str | None = None, *, timeout: float = 5.0
) -> ObservedPeer:
    """Wait (bounded) until ``public_key`` has completed a handshake on ``name``.

    WireGuard handshakes only when there is traffic (or a keepalive), so
    the caller sends some; this polls the device, there is no event for it.
    """
    deadline = time.monotonic() + timeout
    while True:
        peer = observe(name, netns).peer(public_key)
        if peer is not None and peer.last_handshake is not None:
            return peer
        if time.monotonic() >= deadline:
            raise Unreachable(f"{name}: no handshake with {public_key} within {timeout:.1f}s")
        time.sleep(HANDSHAKE_POLL)
