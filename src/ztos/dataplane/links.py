"""Links, addresses, routes, MTU, namespaces, sysctls, VXLAN, bridge ports, FDB: the netlink adapter.

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
from pyroute2.netlink.rtnl import ndmsg
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from ztos.errors import Conflict, NotFound, ToolError

ZTOS_ROUTE_PROTO = 90
"""rtnetlink protocol of ZTOS routes (``ip route show proto 90``); unused in rt_protos."""

MAIN_TABLE = 254
IFF_UP = 0x1
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_GONE = {errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENOENT}


@dataclass(frozen=True)
class VxlanInfo:
    """The identity of a VXLAN device: what cannot change without recreating it."""

    vni: int
    local: str | None
    learning: bool
    port: int


@dataclass(frozen=True)
class PortInfo:
    """Flags of a link enslaved to a bridge (``bridge link show``)."""

    learning: bool
    neigh_suppress: bool
    isolated: bool


@dataclass(frozen=True)
class LinkInfo:
    """One link as the kernel reports it; ``kind`` is None for plain devices.

    ``vxlan`` is set for VXLAN devices, ``port`` for bridge ports; ``alias``
    is the free-text ``ip link set NAME alias`` label (IFLA_IFALIAS).
    """

    name: str
    index: int
    kind: str | None
    mtu: int
    up: bool
    peer_index: int | None = None
    mac: str | None = None
    master_index: int | None = None
    alias: str | None = None
    vxlan: VxlanInfo | None = None
    port: PortInfo | None = None


@dataclass(frozen=True)
class FdbEntry:
    """One bridge/VXLAN forwarding entry (``bridge fdb show``).

    ``master`` entries belong to the bridge a port is enslaved to; the others
    to the device itself (a VXLAN device's remote VTEPs). ``state`` is
    ``permanent`` (local or ZTOS-programmed), ``static`` or ``dynamic`` (learned).
    """

    ifname: str
    mac: str
    dst: str | None
    master: bool
    state: str
    sticky: bool = False


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


def set_link(
    name: str,
    netns: str | None = None,
    *,
    mtu: int | None = None,
    up: bool | None = None,
    mac: str | None = None,
    alias: str | None = None,
) -> None:
    """Set MTU, administrative state, MAC address and/or alias (only the given ones)."""
    changes: dict[str, Any] = {}
    if mtu is not None:
        changes["mtu"] = mtu
    if up is not None:
        changes["state"] = "up" if up else "down"
    if mac is not None:
        changes["address"] = mac
    if alias is not None:
        changes["ifalias"] = alias
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


def list_links(netns: str | None = None) -> tuple[LinkInfo, ...]:
    """Every link in the namespace, with VXLAN and bridge-port details, in one dump."""
    with _ipr(netns, "list links") as ipr:
        return tuple(sorted((_link_info(row) for row in ipr.get_links()), key=lambda link: link.index))


def create_vxlan(
    name: str, vni: int, local: str, *, learning: bool, port: int, netns: str | None = None
) -> LinkInfo:
    """A VXLAN device without a default remote (the FDB says where frames go).

    ``local`` is the source VTEP address, IPv6 or IPv4. An existing device is
    accepted only with the same VNI, local address, learning mode and port:
    those cannot be changed in place, so the caller deletes and recreates it.
    """
    address = ipaddress.ip_address(local)
    wanted = VxlanInfo(vni=vni, local=str(address), learning=learning, port=port)
    local_key = "vxlan_local6" if address.version == 6 else "vxlan_local"
    with _ipr(netns, f"create vxlan {name} vni {vni} local {local}") as ipr:
        existing = _find(ipr, name)
        if existing is None:
            ipr.link(
                "add",
                ifname=name,
                kind="vxlan",
                vxlan_id=vni,
                vxlan_learning=int(learning),
                vxlan_port=port,
                **{local_key: str(address)},
            )
            existing = _find(ipr, name)
    link = _expect_kind(existing, name, "vxlan")
    if link.vxlan != wanted:
        raise Conflict(f"vxlan {name} exists as {link.vxlan}, not {wanted}: delete it first")
    return link


def set_bridge_port(
    name: str,
    netns: str | None = None,
    *,
    learning: bool | None = None,
    neigh_suppress: bool | None = None,
    isolated: bool | None = None,
) -> None:
    """Set bridge-port flags of an enslaved link (only the given ones).

    ``isolated`` ports never exchange frames with each other (kernel 4.18+),
    only with non-isolated ports.
    """
    given = {"learning": learning, "neigh_suppress": neigh_suppress, "isolated": isolated}
    flags = {key: int(value) for key, value in given.items() if value is not None}
    with _ipr(netns, f"set bridge port {name} {flags}") as ipr:
        ipr.brport("set", index=_index(ipr, name), **flags)


def ipv6_enabled(name: str, netns: str | None = None) -> bool:
    """Whether a link has IPv6 (and so a link-local address once up); False without IPv6."""
    path = Path("/proc/sys/net/ipv6/conf") / name / "disable_ipv6"
    with _tool(f"read IPv6 state of {name} in netns {netns or '(current)'}"), _entered(netns):
        return path.exists() and path.read_text().strip() == "0"


def set_ipv6(name: str, enabled: bool, netns: str | None = None) -> None:
    """Turn IPv6 on or off on one link (``net.ipv6.conf.NAME.disable_ipv6``).

    Written as a path, not a dotted sysctl key, because link names may contain dots.
    """
    path = Path("/proc/sys/net/ipv6/conf") / name / "disable_ipv6"
    what = f"set disable_ipv6={int(not enabled)} on {name} in netns {netns or '(current)'}"
    with _tool(what), _entered(netns):
        path.write_text(f"{int(not enabled)}\n")


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


def default_gateways(
    netns: str | None = None, *, proto: int = ZTOS_ROUTE_PROTO
) -> tuple[tuple[str, str], ...]:
    """``(link, gateway)`` of every main-table default route installed with ``proto``."""
    with _ipr(netns, "read default routes") as ipr:
        names = {row["index"]: row.get("IFLA_IFNAME") for row in ipr.get_links()}
        rows = [
            *ipr.get_routes(family=2, table=MAIN_TABLE),
            *ipr.get_routes(family=10, table=MAIN_TABLE),
        ]
    found = {
        (names.get(row.get("RTA_OIF"), "?"), str(ipaddress.ip_address(row.get("RTA_GATEWAY"))))
        for row in rows
        if row["dst_len"] == 0 and row["proto"] == proto and row.get("RTA_GATEWAY")
    }
    return tuple(sorted(found))


def add_default_route(
    name: str, gateway: str, netns: str | None = None, *, proto: int = ZTOS_ROUTE_PROTO
) -> None:
    """``default via GATEWAY dev NAME``; replaces the family's default route (desired wins)."""
    address = ipaddress.ip_address(gateway)
    with _ipr(netns, f"add default route via {gateway} dev {name}") as ipr:
        ipr.route("replace", **_default_route(ipr, name, address, proto))


def remove_default_route(
    name: str, gateway: str, netns: str | None = None, *, proto: int = ZTOS_ROUTE_PROTO
) -> None:
    address = ipaddress.ip_address(gateway)
    with _ipr(netns, f"remove default route via {gateway} dev {name}") as ipr:
        if _find_index(ipr, name) is None:
            return
        try:
            ipr.route("del", **_default_route(ipr, name, address, proto))
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise


def _default_route(ipr: Any, name: str, gateway: IPAddress, proto: int) -> dict[str, Any]:
    family = 10 if gateway.version == 6 else 2
    return {
        "dst_len": 0,
        "gateway": str(gateway),
        "oif": _index(ipr, name),
        "proto": proto,
        "table": MAIN_TABLE,
        "family": family,
    }


# --- forwarding database ---------------------------------------------------------


def list_fdb(netns: str | None = None) -> tuple[FdbEntry, ...]:
    """Every bridge and VXLAN FDB entry in the namespace, in one dump."""
    with _ipr(netns, "read fdb") as ipr:
        names = {row["index"]: row.get("IFLA_IFNAME") for row in ipr.get_links()}
        rows = list(ipr.fdb("dump"))
    entries = (_fdb_entry(row, names) for row in rows)
    return tuple(sorted((e for e in entries if e is not None), key=lambda e: (e.ifname, e.mac, e.dst or "")))


def fdb_append(name: str, mac: str, dst: str, netns: str | None = None) -> None:
    """Add a remote (``dst``) to a VXLAN device's entry for ``mac``, keeping the others.

    ``00:00:00:00:00:00`` is the flood list: broadcast and unknown frames go to
    every VTEP it names (head-end replication). Appending a present one is a no-op.
    """
    with _ipr(netns, f"fdb append {mac} dev {name} dst {dst}") as ipr:
        ipr.fdb("append", ifindex=_index(ipr, name), lladdr=mac, dst=str(ipaddress.ip_address(dst)))


def fdb_delete(name: str, mac: str, dst: str, netns: str | None = None) -> None:
    """Remove one remote from a VXLAN device's entry for ``mac``; gone already is fine."""
    with _ipr(netns, f"fdb del {mac} dev {name} dst {dst}") as ipr:
        index = _find_index(ipr, name)
        if index is None:
            return
        try:
            ipr.fdb("del", ifindex=index, lladdr=mac, dst=str(ipaddress.ip_address(dst)))
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise


def add_static_fdb(port: str, mac: str, netns: str | None = None) -> None:
    """Pin ``mac`` to a bridge port: ``bridge fdb replace MAC dev PORT master static sticky``.

    Static: it never ages out; sticky: a frame from that MAC arriving on another
    port cannot move it there (no hijacking by a spoofing neighbour).
    """
    with _ipr(netns, f"fdb replace {mac} dev {port} master static sticky") as ipr:
        ipr.fdb(
            "replace",
            ifindex=_index(ipr, port),
            lladdr=mac,
            state=ndmsg.NUD_NOARP,
            flags=ndmsg.NTF_MASTER | ndmsg.NTF_STICKY,
        )


def remove_static_fdb(port: str, mac: str, netns: str | None = None) -> None:
    """Unpin ``mac`` from a bridge port (``bridge fdb del MAC dev PORT master``); gone is fine."""
    with _ipr(netns, f"fdb del {mac} dev {port} master") as ipr:
        index = _find_index(ipr, port)
        if index is None:
            return
        try:
            ipr.fdb("del", ifindex=index, lladdr=mac, state=ndmsg.NUD_NOARP, flags=ndmsg.NTF_MASTER)
        except NetlinkError as exc:
            if exc.code not in _GONE:
                raise


def _fdb_state(state: int) -> str:
    if state & ndmsg.NUD_PERMANENT:
        return "permanent"
    return "static" if state & ndmsg.NUD_NOARP else "dynamic"


def _fdb_entry(row: Any, names: dict[int, str]) -> FdbEntry | None:
    mac = row.get("NDA_LLADDR")
    if mac is None or row["ifindex"] not in names:
        return None
    dst = row.get("NDA_DST")
    return FdbEntry(
        ifname=names[row["ifindex"]],
        mac=mac.lower(),
        dst=None if dst is None else str(ipaddress.ip_address(dst)),
        master=bool(row["flags"] & ndmsg.NTF_MASTER) or row.get("NDA_MASTER") is not None,
        state=_fdb_state(row["state"]),
        sticky=bool(row["flags"] & ndmsg.NTF_STICKY),
    )


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
    """An ``IPRoute`` socket in ``netns``; fails (never creates) when it is missing.

    The socket is opened after switching this thread into the namespace
    (``setns``) rather than with ``IPRoute(netns=…)``, which forks a helper
    process per socket (~7 ms instead of ~2 ms; the agent opens dozens a pass).
    A netlink socket stays bound to the namespace it was created in.
    """
    with _tool(what):
        if netns is not None and not netns_exists(netns):
            raise NotFound(f"{what}: network namespace {netns!r} does not exist")
        with _entered(netns):
            ipr = IPRoute()
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
    mac = row.get("IFLA_ADDRESS")
    return LinkInfo(
        name=row.get("IFLA_IFNAME"),
        index=row["index"],
        kind=row.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")),
        mtu=row.get("IFLA_MTU"),
        up=bool(row["flags"] & IFF_UP),
        peer_index=row.get("IFLA_LINK"),
        mac=mac.lower() if mac else None,
        master_index=row.get("IFLA_MASTER"),
        alias=row.get("IFLA_IFALIAS") or None,
        vxlan=_vxlan_info(row),
        port=_port_info(row),
    )


def _vxlan_info(row: Any) -> VxlanInfo | None:
    if row.get(("IFLA_LINKINFO", "IFLA_INFO_KIND")) != "vxlan":
        return None
    data = row.get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))
    if data is None:
        return None
    local = data.get("IFLA_VXLAN_LOCAL6") or data.get("IFLA_VXLAN_LOCAL")
    return VxlanInfo(
        vni=data.get("IFLA_VXLAN_ID"),
        local=None if local is None else str(ipaddress.ip_address(local)),
        learning=bool(data.get("IFLA_VXLAN_LEARNING")),
        port=data.get("IFLA_VXLAN_PORT"),
    )


def _port_info(row: Any) -> PortInfo | None:
    if row.get(("IFLA_LINKINFO", "IFLA_INFO_SLAVE_KIND")) != "bridge":
        return None
    data = row.get(("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA"))
    if data is None:
        return None
    return PortInfo(
        learning=bool(data.get("IFLA_BRPORT_LEARNING")),
        neigh_suppress=bool(data.get("IFLA_BRPORT_NEIGH_SUPPRESS")),
        isolated=bool(data.get("IFLA_BRPORT_ISOLATED")),
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
