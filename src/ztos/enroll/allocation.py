"""What enrolment hands out once per node, found by keyed reads instead of a node list.

Enrolment used to read every node record inside its write transaction (to find
the lowest free IPv4 address and to check that no other node holds the
WireGuard key), so each enrolment cost O(nodes) under the directory's write
lock and enrolling N hosts O(N²): p50 28 ms for the first 100 of 1,000, 124 ms
for the last 100 (bench/enroll_watch.py). Three indexes in the store's shared
state replace the list:

* ``ipv4lease``: overlay IPv4 address -> ``{"node": name}``;
* ``wgkeyowner``: WireGuard public key -> ``{"node": name}``;
* ``ipv4next``: IPv4 prefix -> ``{"high": i, "free": [...]}``: every host
  index of the prefix below ``high`` is leased except those in ``free`` (the
  addresses of deleted nodes, which ``release`` adds), so the allocation
  stays "lowest free address" without a scan.

They are read and written inside the enrolment's own transaction, so two
controller replicas over one store serialise on its write lock as for any
write, and no two nodes ever get one address. Shared state has no revision and
wakes no watcher. An entry counts only while the node it names still holds
that address or key (one keyed read), so an entry left behind by a node
removed some other way never blocks anything: it is overwritten. A directory
written before these indexes (or a changed prefix) is indexed on its first
enrolment, the one time the nodes are listed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from ztos import addressing
from ztos.directory import Transaction
from ztos.errors import Conflict
from ztos.model import Node

LEASE_SCOPE = "ipv4lease"
KEY_SCOPE = "wgkeyowner"
CURSOR_SCOPE = "ipv4next"
FIRST_INDEX = 9  # .1-.9 of the prefix are kept for gateways
FOREVER = 0.0  # ``now`` for entries written without a ttl: they never expire


def key_owner(tx: Transaction, wg_key: str) -> str | None:
    """The node that holds ``wg_key`` now, if any."""
    entry = tx.get_state(KEY_SCOPE, wg_key, FOREVER)
    if entry is None:
        return None
    node = tx.get(Node, entry["node"])
    return node.name if node is not None and node.wg_public_key == wg_key else None


def claim_key(tx: Transaction, wg_key: str, node: str, replacing: str | None = None) -> None:
    """Record ``node`` as the holder of ``wg_key`` (forgetting the key it held before)."""
    if replacing is not None and replacing != wg_key:
        tx.delete_state(KEY_SCOPE, replacing)
    tx.put_state(KEY_SCOPE, wg_key, {"node": node}, FOREVER)


def holds_ipv4(tx: Transaction, node: Node) -> bool:
    """Whether ``node``'s record still owns the address it names."""
    return _holder(tx, node.overlay_ipv4) == node.name


def ensure_index(tx: Transaction, prefix: ipaddress.IPv4Network) -> None:
    """Index every node once, if this directory (or this prefix) has no index yet.

    Must come before ``key_owner``: without it, a key held by a node enrolled
    before the index existed would not be found."""
    if tx.get_state(CURSOR_SCOPE, str(prefix), FOREVER) is None:
        _save(tx, prefix, _cursor(tx, prefix))


def allocate_ipv4(tx: Transaction, prefix: ipaddress.IPv4Network, node: str) -> ipaddress.IPv4Address:
    """Lease the lowest free host address of ``prefix`` (from .10) to ``node``."""
    cursor = _cursor(tx, prefix)
    count = addressing.ipv4_host_count(prefix)
    while cursor.free or cursor.high < count:
        index = cursor.free.pop(0) if cursor.free else cursor.take_high()
        address = addressing.ipv4_host(prefix, index)
        if _holder(tx, address) is None:
            _lease(tx, address, node)
            _save(tx, prefix, cursor)
            return address
    return _reclaim(tx, prefix, node, count)


def release(tx: Transaction, prefix: ipaddress.IPv4Network, node: Node) -> None:
    """Forget a deleted node's address and key, so the address is handed out again."""
    if key_owner(tx, node.wg_public_key) == node.name:
        tx.delete_state(KEY_SCOPE, node.wg_public_key)
    if _holder(tx, node.overlay_ipv4) != node.name:
        return
    tx.delete_state(LEASE_SCOPE, str(node.overlay_ipv4))
    index = addressing.ipv4_host_index(prefix, node.overlay_ipv4)
    entry = tx.get_state(CURSOR_SCOPE, str(prefix), FOREVER)
    if index is None or entry is None:
        return
    cursor = Cursor.of(entry)
    if FIRST_INDEX <= index < cursor.high and index not in cursor.free:
        cursor.free = sorted([*cursor.free, index])
        _save(tx, prefix, cursor)


@dataclass
class Cursor:
    """Where the next address comes from: the lowest freed index, else ``high``."""

    high: int
    free: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Cursor:
        return cls(int(entry["high"]), [int(i) for i in entry.get("free", [])])

    def take_high(self) -> int:
        self.high += 1
        return self.high - 1


def _holder(tx: Transaction, address: ipaddress.IPv4Address) -> str | None:
    entry = tx.get_state(LEASE_SCOPE, str(address), FOREVER)
    if entry is None:
        return None
    node = tx.get(Node, entry["node"])
    return node.name if node is not None and node.overlay_ipv4 == address else None


def _lease(tx: Transaction, address: ipaddress.IPv4Address, node: str) -> None:
    tx.put_state(LEASE_SCOPE, str(address), {"node": node}, FOREVER)


def _save(tx: Transaction, prefix: ipaddress.IPv4Network, cursor: Cursor) -> None:
    tx.put_state(CURSOR_SCOPE, str(prefix), {"high": cursor.high, "free": cursor.free}, FOREVER)


def _cursor(tx: Transaction, prefix: ipaddress.IPv4Network) -> Cursor:
    """The prefix's cursor; indexes every node first if it has none yet."""
    entry = tx.get_state(CURSOR_SCOPE, str(prefix), FOREVER)
    if entry is not None:
        return Cursor.of(entry)
    used: set[int] = set()
    for node in tx.list(Node):
        _lease(tx, node.overlay_ipv4, node.name)
        claim_key(tx, node.wg_public_key, node.name)
        index = addressing.ipv4_host_index(prefix, node.overlay_ipv4)
        if index is not None and index >= FIRST_INDEX:
            used.add(index)
    high = max(used, default=FIRST_INDEX - 1) + 1
    return Cursor(high, sorted(set(range(FIRST_INDEX, high)) - used))


def _reclaim(tx: Transaction, prefix: ipaddress.IPv4Network, node: str, count: int) -> ipaddress.IPv4Address:
    """Every index handed out: look for one whose node went away without ``release``
    (a scan, but only once the prefix has been used up)."""
    for index in range(FIRST_INDEX, count):
        address = addressing.ipv4_host(prefix, index)
        if _holder(tx, address) is None:
            _lease(tx, address, node)
            return address
    raise Conflict(f"IPv4 overlay prefix {prefix} is full")
