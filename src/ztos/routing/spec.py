"""Desired BGP EVPN state of one host, as plain frozen data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONFIG_ROOT = Path("/run/ztos/frr")
"""Where agents keep each instance's FRR files (outside their 0700 state dirs: frr reads them)."""


@dataclass(frozen=True)
class BgpNeighbor:
    address: str  # IPv6 or IPv4; for mesh peers, the peer's overlay IPv6 address
    remote_as: int | None = None  # None: same AS (iBGP, "remote-as internal")
    description: str = ""


@dataclass(frozen=True)
class FrrSpec:
    """One FRR instance (zebra + bgpd) serving one host.

    ``instance`` must be unique on the machine (several lab hosts share one
    kernel): it names the socket directory ``/var/run/frr/<instance>`` and the
    daemons' ``-N`` namespace. ``router_id`` is the host's IPv4 overlay address,
    which is also its VTEP (FRR 8.4 EVPN supports only IPv4 VTEPs).
    """

    instance: str
    asn: int
    router_id: str
    neighbors: tuple[BgpNeighbor, ...]
    evpn: bool = True
    config_dir: str = ""  # where frr.conf and pid files live; readable by the frr user
