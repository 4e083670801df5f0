"""Links, addresses, routes, MTU, namespaces and sysctls: the netlink adapter.

This is the only module that imports pyroute2. Every call takes ``netns``:
``None`` is the namespace the calling thread runs in (the usual case for an
agent started inside its namespace), a name is a namespace under
``/run/netns``. Namespaces are never created implicitly.

Operations are idempotent, as the reconciler expects: deleting something that
is already gone is fine; creating something that exists is fine only when the
existing object matches, otherwise ``Conflict``. Kernel errors become
``ToolError`` carrying the kernel's own text, with the netlink error as cause.

Routes ZTOS installs carry the protocol number ``ZTOS_ROUTE_PROTO`` so the
observer reports (and the planner removes) only routes ZTOS owns, never an
administrator's.
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from ztos.errors import Conflict, NotFound, ToolError

ZTOS_ROUTE_PROTO = 90
"""rtnetlink protocol of ZTOS routes (``ip route show proto 90``); unused in rt_protos."""

MAIN_TABLE = 254
IFF_UP = 0x1
_GONE = {errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENOENT}


@dataclass(frozen=True)
class LinkInfo:
    """One link as the kernel reports it; ``kind`` is None for plain devices."""

    name: str
    index: int
    kind: str | None
    mtu: int
    up: bool
    peer_index: int | None = None


@dataclass(frozen=True)
class AddressInfo:
    """One address on the host: bare ``address``, its prefix length, link and link MTU."""

    ifname: str
    address: str
    prefixlen: int
    mtu: int


# --- links -------------------------------------------------------------------


def get_link(name: str, netns: str | None = None) -> LinkInfo | None:
    with _ipr(netns, f"read link {name}") as ipr:
        return _find(ipr, name)


def create_link(name: str, kind: str, netns: str | None = None) -> LinkInfo:
    """Create a link of a simple kind (``wireguard``, ``bridge``, ``dummy``)."""
    with _ipr(netns, f"create {kind} link {name}") as ipr:
        existing = _find(ipr, name)
        if existing is None:
            ipr.link("add", ifname=name, kind=kind)
            existing = _find(ipr, name)
    return _expect_kind(existing, name, kind)


def kind_supported(kind: str, netns: str | None = None) -> bool:
    """Whether the kernel can create links of ``kind`` (run-time feature test).

    Creates and deletes a throw-away link with a random name; EOPNOTSUPP (no
    module, none loadable) means no. Used for wireguard, and fit for macsec/vrf.
    """
    probe = f"ztprobe{secrets.token_hex(4)}"
    with _ipr(netns, f"probe for {kind} links") as ipr:
        try:
            ipr.link("add", ifname=probe, kind=kind)
        except NetlinkError as exc:
            if exc.code in (errno.EOPNOTSUPP, errno.ENOTSUP):
                return False
            raise
        ipr.link("del", index=_index(ipr, probe))
    return True


def delete_link(name: str, netns: str | None = None) -> bool:
    """Delete a link; False when it was already gone."""
    with _ipr(netns, f"delete link {name}") as ipr:
        found = _find(ipr, name)
        if found is None:
            return False
        try:
            ipr.link("del", index=found.index)
        except NetlinkError as exc:
            if exc.code in _GONE:
                return False
            raise
    return True


def set_link(name: str, netns: str | None = None, *, mtu: int | None = None, up: bool | None = None) -> None:
    """Set MTU and/or administrative state (only the given ones)."""
    changes: dict[str, Any] = {}
    if mtu is not None:
        changes["mtu"] = mtu
    if up is not None:
        changes["state"] = "up" if up else "down"
    with _ipr(netns, f"set link {name} {changes}") as ipr:
        ipr.link("set", index=_index(ipr, name), **changes)


def set_master(name: str, master: str | None, netns: str | None = None) -> None:
    """Enslave ``name`` to a bridge (``master=None`` releases it)."""
    with _ipr(netns, f"set master of {name} to {master}") as ipr:
        master_index = 0 if master is None else _index(ipr, master)
        ipr.link("set", index=_index(ipr, name), master=master_index)


def create_veth(
    name: str,
    peer: str,
    *,
    netns: str | None = None,
    peer_netns: str | None = None,
    mtu: int | None = None,
) -> None:
    """A veth pair ``name`` (in ``netns``) <-> ``peer`` (moved into ``peer_netns``)."""
    with _ipr(netns, f"create veth {name} <-> {peer}") as ipr:
        existing = _find(ipr, name)
        if existing is None:
            spec: dict[str, Any] = {"ifname": peer}
            if peer_netns is not None and peer_netns != netns:
                spec["net_ns_fd"] = peer_netns
            ipr.link("add", ifname=name, kind="veth", peer=spec)
        else:
            _check_veth_pair(_expect_kind(existing, name, "veth"), peer, peer_netns)
    if mtu is not None:
        set_link(name, netns, mtu=mtu)
        set_link(peer, peer_netns, mtu=mtu)


def create_bridge(name: str, netns: str | None = None, *, up: bool = True) -> None:
    create_link(name, "bridge", netns)
    if up:
        set_link(name, netns, up=True)


def route_device(destination: str, netns: str | None = None) -> LinkInfo:
    """The link the kernel would send packets for ``destination`` out of."""
    with _ipr(netns, f"route get {destination}") as ipr:
        answer = ipr.route("get", dst=destination)
        index = answer[0].get("RTA_OIF") if answer else None
        if index is None:
            raise NotFound(f"no route to {destination} in netns {netns or '(current)'}")
        return _link_info(ipr.get_links(index)[0])


def _check_veth_pair(link: LinkInfo, peer: str, peer_netns: str | None) -> None:
    other = get_link(peer, peer_netns)
    if other is None or other.kind != "veth" or link.peer_index != other.index:
        raise Conflict(
            f"veth {link.name} exists but is not paired with {peer} in netns "
            f"{peer_netns or '(current)'}: delete it or pick another name"
        )


# --- addresses ---------------------------------------------------------------


def get_addresses(name: str, netns: str | None = None) -> tuple[str, ...]:
    """Addresses on a link as sorted ``ADDR/LEN`` strings, without link-local ones."""
    with _ipr(netns, f"read addresses of {name}") as ipr:
        rows = ipr.get_addr(index=_index(ipr, name))
        found = {_address_text(row) for row in rows}
    return tuple(sorted(a for a in found if not ipaddress.ip_interface(a).is_link_local))


def all_addresses(netns: str | None = None) -> tuple[AddressInfo, ...]:
    """Every address in the namespace (link-local included), for underlay discovery."""
    with _ipr(netns, "read all addresses") as ipr:
        by_index = {row["index"]: _link_info(row) for row in ipr.get_links()}
        rows = list(ipr.get_addr())
    found = []
    for row in rows:
        link = by_index.get(row["index"])
        if link is not None:
            iface = ipaddress.ip_interface(_address_text(row))
            found.append(AddressInfo(link.name, str(iface.ip), iface.network.prefixlen, link.mtu))
    return tuple(sorted(found, key=lambda a: (a.ifname, a.address)))


def add_address(name: str, cidr: str, netns: str | None = None) -> None:
    """Add an address; IPv6 ones with NODAD so they are usable at once."""
    iface = ipaddress.ip_interface(cidr)
    flags = IFA_F_NODAD if iface.version == 6 else 0
    with _ipr(netns, f"add address {cidr} to {name}") as ipr:
        try:
            ipr.addr(
                "add",
                index=_index(ipr, name),
                address=str(iface.ip),
                prefixlen=iface.network.prefixlen,
                flags=flags,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise


def remove_address(name: str, cidr: str, netns: str | None = None) -> None:
    iface = ipaddress.ip_interface(cidr)
    with _ipr(netns, f"remove address {cidr} from {name}") as ipr:
        index = _find_index(ipr, name)
        if index is None:
            return
        try:
            ipr.addr("del", index=index, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise


# --- routes ------------------------------------------------------------------


def get_routes(name: str, netns: str | None = None, *, proto: int = ZTOS_ROUTE_PROTO) -> tuple[str, ...]:
    """Main-table routes out of ``name`` installed with ``proto``, as sorted CIDRs."""
    with _ipr(netns, f"read routes of {name}") as ipr:
        index = _index(ipr, name)
        rows = [
            *ipr.get_routes(family=4, table=MAIN_TABLE),
            *ipr.get_routes(family=6, table=MAIN_TABLE),
        ]
    mine = [r for r in rows if r.get("RTA_OIF") == index and r["proto"] == proto]
    return tuple(sorted({_route_text(row) for row in mine}))


def add_route(name: str, cidr: str, netns: str | None = None, *, proto: int = ZTOS_ROUTE_PROTO) -> None:
    """Route ``cidr`` out of ``name``; replaces a route to the same prefix (desired wins)."""
    network = ipaddress.ip_network(cidr, strict=False)
    with _ipr(netns, f"add route {cidr} dev {name}") as ipr:
        ipr.route(
            "replace",
            dst=str(network),
            oif=_index(ipr, name),
            proto=proto,
            table=MAIN_TABLE,
            family=10 if network.version == 6 else 2,
        )


def remove_route(name: str, cidr: str, netns: str | None = None, *, proto: int = ZTOS_ROUTE_PROTO) -> None:
    network = ipaddress.ip_network(cidr, strict=False)
    with _ipr(netns, f"remove route {cidr} dev {name}") as ipr:
        index = _find_index(ipr, name)
        if index is None:
            return
        try:
            ipr.route(
                "del",
                dst=str(network),
                oif=index,
                proto=proto,
                table=MAIN_TABLE,
                family=10 if network.version == 6 else 2,
            )
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise


# --- namespaces and sysctls ----------------------------------------------------


def netns_exists(name: str) -> bool:
    return name in pyroute2_netns.listnetns()


def list_netns() -> tuple[str, ...]:
    return tuple(sorted(pyroute2_netns.listnetns()))


def create_netns(name: str) -> None:
    """Create a named namespace (accepting an existing one) and bring its ``lo`` up."""
    if not netns_exists(name):
        with _tool(f"create netns {name}"):
            pyroute2_netns.create(name)
    set_link("lo", name, up=True)


def delete_netns(name: str) -> bool:
    """Delete a named namespace; False when it was already gone."""
    try:
        pyroute2_netns.remove(name)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ToolError(f"delete netns {name}: {exc.strerror}") from exc
    return True


def set_sysctl(key: str, value: str | int, netns: str | None = None) -> None:
    """Write ``net.ipv6.conf.all.forwarding``-style keys inside a namespace.

    Network sysctls under /proc/sys/net belong to the namespace of the thread
    that opens them, so the thread enters the namespace just for the write.
    """
    path = Path("/proc/sys") / key.replace(".", "/")
    with _tool(f"sysctl {key}={value} in netns {netns or '(current)'}"), _entered(netns):
        path.write_text(f"{value}\n")


def get_sysctl(key: str, netns: str | None = None) -> str:
    path = Path("/proc/sys") / key.replace(".", "/")
    with _tool(f"read sysctl {key} in netns {netns or '(current)'}"), _entered(netns):
        return path.read_text().strip()


@contextmanager
def _entered(netns: str | None) -> Iterator[None]:
    if netns is None:
        yield
        return
    pyroute2_netns.pushns(netns)
    try:
        yield
    finally:
        pyroute2_netns.popns()


# --- plumbing ------------------------------------------------------------------


@contextmanager
def _tool(what: str) -> Iterator[None]:
    """Turn netlink and OS errors into ``ToolError`` keeping the kernel's text."""
    try:
        yield
    except NetlinkError as exc:
        raise ToolError(f"{what}: {exc.args[-1]} (errno {exc.code})") from exc
    except OSError as exc:
        raise ToolError(f"{what}: {exc.strerror or exc}") from exc


@contextmanager
def _ipr(netns: str | None, what: str) -> Iterator[Any]:
    """An ``IPRoute`` socket in ``netns``; fails (never creates) when it is missing."""
    with _tool(what):
        if netns is not None and not netns_exists(netns):
            raise NotFound(f"{what}: network namespace {netns!r} does not exist")
        ipr = IPRoute(netns=netns, flags=0) if netns is not None else IPRoute()
        try:
            yield ipr
        finally:
            ipr.close()


def _find(ipr: Any, name: str) -> LinkInfo | None:
    try:
        rows = ipr.get_links(ifname=name)
    except NetlinkError as exc:
        if exc.code in _GONE:
            return None
        raise
    return _link_info(rows[0]) if rows else None


def _find_index(ipr: Any, name: str) -> int | None:
    found = _find(ipr, name)
    return None if found is None else found.index


def _index(ipr: Any, name: str) -> int:
    index = _find_index(ipr, name)
    if index is None:
        raise NotFound(f"link {name} does not exist")
    return index


def _link_info(row: Any) -> LinkInfo:
    return LinkInfo(
        name=row.get("IFLA_IFNAME"),
        index=row["index"],
        kind=row.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")),
        mtu=row.get("IFLA_MTU"),
        up=bool(row["flags"] & IFF_UP),
        peer_index=row.get("IFLA_LINK"),
    )


def _expect_kind(link: LinkInfo | None, name: str, kind: str) -> LinkInfo:
    if link is None:
        raise ToolError(f"link {name} vanished right after it was created")
    if link.kind != kind:
        raise Conflict(
            f"link {name} exists as {link.kind or 'a plain device'}, not {kind}: "
            "delete it or pick another name"
        )
    return link


def _address_text(row: Any) -> str:
    address = row.get("IFA_LOCAL") or row.get("IFA_ADDRESS")
    return str(ipaddress.ip_interface(f"{address}/{row['prefixlen']}"))


def _route_text(row: Any) -> str:
    default = "::" if row["family"] == 10 else str(ipaddress.IPv4Address(0))
    return str(ipaddress.ip_network(f"{row.get('RTA_DST') or default}/{row['dst_len']}"))
