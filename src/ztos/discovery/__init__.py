"""Secure service discovery: authoritative DNS for a ZTOS network, updated with RFC 2136 + TSIG.

Why: hosts and workloads find each other (and the controllers) by name, and a
name must only ever be changed by the identity that owns it. Every change is
an RFC 2136 UPDATE signed with TSIG (HMAC-SHA256); the server checks the
signature, the time (replays of old updates fail) and a per-key policy. The
same policy table, keys and records run on the embedded server (one machine,
nothing to install) and on BIND 9 (to scale), and one contract suite tests both.

Naming scheme (decided; ``names.py`` builds every name)::

    zone            <network>.ztos.internal.            (suffix configurable)
    name server     ns.<zone>          A/AAAA           ("ns" is a reserved host name)
    host            <host>.<zone>      AAAA overlay IPv6, A overlay IPv4
    host services   _<svc>._<proto>.<host>.<zone>   SRV 0 0 <port> <host>.<zone>.  + TXT
                      e.g. _wireguard._udp.<host>.<zone>, _bgp._tcp.<host>.<zone>
    host's list     _services._dns-sd._udp.<host>.<zone>  PTR _<svc>._<proto>.<host>.<zone>.
                      (RFC 6763 section 9, so remove_host finds what a host registered)
    browse          _<svc>._<proto>.<zone>   PTR _<svc>._<proto>.<host>.<zone>.   (controller)
    controllers     _ztos-api._tcp.<zone>    SRV <prio> <weight> <port> <name>.   (controller)
    TSIG keys       host key "<host>.<zone>." may change <host>.<zone> and below,
                      types A AAAA SRV TXT PTR only (BIND: grant K subdomain <host>.<zone>. ...)
                    controller key "_ztos-controller.<zone>." may change the whole zone
                      (BIND: grant K zonesub ANY) and is the one allowed AXFR

Because a host's services sit *under* its name, one plain ``subdomain`` grant
gives a host key exactly its own records, and ``remove_host`` can delete them
all. The browse PTRs and controller SRVs are zone-level, so only the controller
key writes them.

Modules (pure ones first)::

    names     the naming scheme               policy   per-key grants (also rendered for BIND)
    zone      zone value, answers, updates    dns64    RFC 6052/6147 synthesis
    records   update messages we send         keys     TSIG keys and keyrings
    engine    the embedded server's logic, I/O-free (bytes in, bytes out)
    server    asyncio UDP/TCP loops around the engine; run_in_thread for tests
    store     ZoneStore protocol, JsonZoneStore
    updates   DnsUpdater (agents, controller), find_controllers
    bind      BIND 9 adapter: named.conf/zone rendering, BindServer process control

Third-party imports: dnspython only, and only inside this package.
"""

from __future__ import annotations

from ztos.discovery.bind import BindServer
from ztos.discovery.dns64 import WELL_KNOWN_PREFIX, Dns64
from ztos.discovery.engine import DnsEngine, EngineSettings, TransferAcl
from ztos.discovery.keys import new_tsig_key
from ztos.discovery.names import zone_origin
from ztos.discovery.policy import HOST_TYPES, Policy, SubdomainOf, ZoneWide, host_grants, network_policy
from ztos.discovery.server import Authority, DnsServer, ThreadedDnsServer
from ztos.discovery.store import JsonZoneStore, ZoneStore
from ztos.discovery.updates import DnsUpdater, find_controllers
from ztos.discovery.zone import Answer, UpdateOutcome, Zone, answer, apply_update, new_zone

__all__ = [
    "HOST_TYPES",
    "WELL_KNOWN_PREFIX",
    "Answer",
    "Authority",
    "BindServer",
    "Dns64",
    "DnsEngine",
    "DnsServer",
    "DnsUpdater",
    "EngineSettings",
    "JsonZoneStore",
    "Policy",
    "SubdomainOf",
    "ThreadedDnsServer",
    "TransferAcl",
    "UpdateOutcome",
    "Zone",
    "ZoneStore",
    "ZoneWide",
    "answer",
    "apply_update",
    "find_controllers",
    "host_grants",
    "network_policy",
    "new_tsig_key",
    "new_zone",
    "zone_origin",
]
