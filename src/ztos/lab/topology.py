"""The lab as a pure description: every name, address and path, derived from three values.

Why a separate, I/O-free module: ``ztos lab down`` must find and remove a lab's
leftovers after a crash, when ``lab.json`` may be gone and half the objects were
never built. So nothing about a lab is random or remembered only at run time;
everything is a function of the lab name (plus host count and underlay MTU),
and ``runner`` builds exactly what this module describes (Mininet's topo/net
split, without its shell strings).

Naming scheme (the one place it is written down; cleanup relies on it):

* Lab name ``LAB``: 1-6 characters ``[a-z0-9]``, starting with a letter. It
  never contains ``-``, so the prefixes below cannot match another lab.
* Network namespaces, all ``ztl-LAB-…``: ``ztl-LAB-ul`` holds the underlay
  bridge and the controller; ``ztl-LAB-hN`` is host N (N = 1, 2, …).
  ``ztl-LAB-`` is the cleanup prefix: every namespace with it is the lab's.
* Links live only inside the lab's namespaces, so their names need not be
  unique on the machine and disappear with the namespace: ``br0`` (the
  underlay bridge in ``ztl-LAB-ul``), ``vhN`` (host N's bridge port there) and
  ``eth0`` (its peer, host N's underlay link in ``ztl-LAB-hN``).
* WireGuard interfaces are the exception: wireguard-go keeps its UAPI socket in
  ``/var/run/wireguard/IFNAME.sock`` for every namespace, so host N's interface
  is ``ztLABhN`` (at most 2 + 6 + 1 + 3 = 12 of the kernel's 15 characters),
  unique machine-wide. Cleanup matches them with ``wg_interface_re`` (the whole
  name, digits after the final ``h``), not a bare prefix, so lab ``ab`` never
  claims lab ``abh1``'s ``ztabh1h1``.
* State, logs, the controller's directory and each host's profile and agent
  state live under ``/run/ztos-lab/LAB/`` (tmpfs: a reboot removes a lab too).
* ZTOS node names are ``hN``: each lab runs its own controller and network.
* Controllers: ``--controllers C`` (1-9) runs C ``ztos controller serve``
  replicas over the one directory file, all in ``ztl-LAB-ul``; controller K
  logs to ``controller.log`` (K = 1) or ``controllerK.log``. Every host's
  profile and the admin's ``config.yaml`` list all their URLs.

Underlay addressing (documentation ranges only, inside the lab's namespaces):
IPv6 ``2001:db8:XXXX::/64`` with ``XXXX`` from a hash of the lab name (so logs of
two labs are told apart), controller K at ``::K`` (``::1``, ``::2``, …) and host
N at ``::1N`` read as digits (``::11``, ``::12``, …, ``::110`` for host 100); an
IPv4 fallback ``192.0.2.0/24`` on the same bridge, controller K ``.K`` and host
N ``.(10+N)``. Each controller listens on its own address, port 8443; only
controller 1 serves the network's DNS zone (on its address, port 53), because
the embedded DNS server keeps its zone in its own process's memory.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ztos.errors import InvalidInput

LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,5}$")
NETNS_PREFIX = "ztl-"
STATE_ROOT = Path("/run/ztos-lab")
WG_SOCKET_DIR = Path("/var/run/wireguard")
DNS_BACKENDS = ("embedded", "bind")
DNS_PORT = 53
DEFAULT_LAB = "lab"
DEFAULT_MTU = 1500
MIN_MTU = 1280
MAX_MTU = 9000
MAX_HOSTS = 200
MAX_CONTROLLERS = 9  # addresses ::1-::9 and .1-.9, below the hosts' ::11 and .11
CONTROLLER_PORT = 8443
BRIDGE = "br0"
HOST_UNDERLAY_LINK = "eth0"
IPV4_UNDERLAY = ipaddress.IPv4Network("192.0.2.0/24")


def check_lab_name(name: str) -> str:
    """The lab name, or ``InvalidInput`` saying what a valid one looks like."""
    if not LAB_NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"lab name {name!r} must be 1-6 lowercase letters or digits, starting with a letter "
            "(it becomes part of namespace and WireGuard interface names)"
        )
    return name


def netns_prefix(lab: str) -> str:
    """Prefix of every namespace of ``lab`` (cleanup lists namespaces by it)."""
    return f"{NETNS_PREFIX}{check_lab_name(lab)}-"


def wg_interface_re(lab: str) -> re.Pattern[str]:
    """Matches exactly the WireGuard interface names of ``lab``'s hosts."""
    return re.compile(rf"^zt{re.escape(check_lab_name(lab))}h[0-9]+$")


def state_dir(lab: str) -> Path:
    return STATE_ROOT / check_lab_name(lab)


def ipv6_prefix(lab: str) -> ipaddress.IPv6Network:
    """The lab's underlay /64: ``2001:db8:XXXX::/64``, XXXX from a hash of the name."""
    digest = hashlib.sha256(check_lab_name(lab).encode()).digest()
    return ipaddress.IPv6Network(f"2001:db8:{int.from_bytes(digest[:2], 'big'):x}::/64")


@dataclass(frozen=True)
class LabHost:
    """One host of the lab: its namespace, links, addresses and files."""

    index: int
    name: str
    netns: str
    wg_interface: str
    bridge_port: str
    underlay_link: str
    ipv6: ipaddress.IPv6Address
    ipv4: ipaddress.IPv4Address
    dir: Path

    @property
    def profile(self) -> Path:
        return self.dir / "profile.yaml"

    @property
    def agent_state(self) -> Path:
        return self.dir / "state"

    @property
    def agent_log(self) -> Path:
        return self.dir / "agent.log"

    @property
    def enrolment(self) -> Path:
        return self.agent_state / "enrolment.json"


@dataclass(frozen=True)
class LabController:
    """One controller replica of the lab: where it listens and logs."""

    index: int
    ipv6: ipaddress.IPv6Address
    ipv4: ipaddress.IPv4Address
    port: int
    log: Path

    @property
    def listen(self) -> str:
        return f"[{self.ipv6}]:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.listen}"


@dataclass(frozen=True)
class LabTopology:
    """A whole lab: the underlay namespace with bridge and controller, and the hosts."""

    name: str
    node_count: int
    underlay_mtu: int = DEFAULT_MTU
    dns_backend: str = "embedded"  # the controller's DNS: "embedded" or "bind" (BIND 9)
    controller_count: int = 1  # replicas of ``ztos controller serve`` over the one directory

    def __post_init__(self) -> None:
        check_lab_name(self.name)
        if not 1 <= self.controller_count <= MAX_CONTROLLERS:
            raise InvalidInput(
                f"--controllers {self.controller_count} must be between 1 and {MAX_CONTROLLERS}"
            )
        if self.dns_backend not in DNS_BACKENDS:
            raise InvalidInput(f"--dns {self.dns_backend!r} must be one of {', '.join(DNS_BACKENDS)}")
        if not 1 <= self.node_count <= MAX_HOSTS:
            raise InvalidInput(f"--nodes {self.node_count} must be between 1 and {MAX_HOSTS}")
        if not MIN_MTU <= self.underlay_mtu <= MAX_MTU:
            raise InvalidInput(
                f"--underlay-mtu {self.underlay_mtu} must be between {MIN_MTU} (the IPv6 minimum) "
                f"and {MAX_MTU}"
            )

    @property
    def netns_prefix(self) -> str:
        return netns_prefix(self.name)

    @property
    def underlay_netns(self) -> str:
        return f"{self.netns_prefix}ul"

    @property
    def bridge(self) -> str:
        return BRIDGE

    @property
    def ipv6_prefix(self) -> ipaddress.IPv6Network:
        return ipv6_prefix(self.name)

    @property
    def ipv4_prefix(self) -> ipaddress.IPv4Network:
        return IPV4_UNDERLAY

    def controller(self, index: int) -> LabController:
        """Controller ``index`` (1-based) as this naming scheme places it."""
        if not 1 <= index <= self.controller_count:
            raise InvalidInput(f"lab {self.name!r} has controllers 1-{self.controller_count}, not {index}")
        log = self.state_dir / ("controller.log" if index == 1 else f"controller{index}.log")
        return LabController(index, self.ipv6_prefix[index], self.ipv4_prefix[index], CONTROLLER_PORT, log)

    @property
    def controllers(self) -> tuple[LabController, ...]:
        return tuple(self.controller(index) for index in range(1, self.controller_count + 1))

    @property
    def controller_urls(self) -> tuple[str, ...]:
        """Every controller's URL, controller 1 first: what profiles and the admin's config list."""
        return tuple(c.url for c in self.controllers)

    @property
    def controller_ipv6(self) -> ipaddress.IPv6Address:
        return self.controller(1).ipv6

    @property
    def controller_ipv4(self) -> ipaddress.IPv4Address:
        return self.controller(1).ipv4

    @property
    def controller_port(self) -> int:
        return CONTROLLER_PORT

    @property
    def controller_listen(self) -> str:
        return self.controller(1).listen

    @property
    def controller_url(self) -> str:
        return self.controller(1).url

    @property
    def state_dir(self) -> Path:
        return state_dir(self.name)

    @property
    def lab_file(self) -> Path:
        return self.state_dir / "lab.json"

    @property
    def admin_home(self) -> Path:
        return self.state_dir / "admin"

    @property
    def controller_db(self) -> Path:
        return self.state_dir / "controller" / "directory.db"

    @property
    def controller_log(self) -> Path:
        return self.controller(1).log

    @property
    def hosts(self) -> tuple[LabHost, ...]:
        return tuple(self.host(index) for index in range(1, self.node_count + 1))

    def host(self, index: int) -> LabHost:
        """Host ``index`` (1-based) as this naming scheme places it."""
        if not 1 <= index <= MAX_HOSTS:
            raise InvalidInput(f"host index {index} must be between 1 and {MAX_HOSTS}")
        return LabHost(
            index=index,
            name=f"h{index}",
            netns=f"{self.netns_prefix}h{index}",
            wg_interface=f"zt{self.name}h{index}",
            bridge_port=f"vh{index}",
            underlay_link=HOST_UNDERLAY_LINK,
            ipv6=ipaddress.IPv6Address(f"{self.ipv6_prefix.network_address}{10 + index}"),
            ipv4=self.ipv4_prefix[10 + index],
            dir=self.state_dir / "hosts" / f"h{index}",
        )

    def host_named(self, name: str) -> LabHost:
        """Host by node name (``h2``) or bare index (``2``)."""
        index = name.removeprefix("h")
        if not index.isdigit() or not 1 <= int(index) <= self.node_count:
            names = ", ".join(h.name for h in self.hosts)
            raise InvalidInput(f"lab {self.name!r} has no host {name!r}; its hosts are {names}")
        return self.host(int(index))

    def with_node_count(self, node_count: int) -> LabTopology:
        return replace(self, node_count=node_count)

    @property
    def netns_names(self) -> tuple[str, ...]:
        """Every namespace of the lab, underlay first."""
        return (self.underlay_netns, *(h.netns for h in self.hosts))

    def wg_socket(self, host: LabHost) -> Path:
        return WG_SOCKET_DIR / f"{host.wg_interface}.sock"
