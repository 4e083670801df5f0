"""The agent publishes its own DNS records with its own TSIG key.

``<host>.<zone>`` AAAA/A (overlay addresses), ``_wireguard._udp.<host>``
SRV + TXT (port and public key), ``_bgp._tcp.<host>`` when BGP EVPN is on
(TXT lists the VNIs it serves). Pushed on start and whenever they change; a
failure is logged and retried on the next pass — DNS never blocks the mesh.
"""

from __future__ import annotations

import logging

from ztos.discovery import DnsUpdater
from ztos.enroll.identity_dir import IdentityDir
from ztos.errors import ZtosError
from ztos.netmap import NodeMap

log = logging.getLogger("ztos.agent.dns")
BGP_PORT = 179

Records = tuple[str, str, str, int, str, tuple[int, ...] | None]


def desired_records(node_map: NodeMap, wg_public_key: str) -> Records:
    vnis = tuple(t.vni for t in node_map.tenants) if node_map.bgp is not None else None
    return (
        node_map.name,
        str(node_map.overlay_ipv6),
        str(node_map.overlay_ipv4),
        node_map.listen_port,
        wg_public_key,
        vnis,
    )


class DnsPublisher:
    def __init__(self, identity: IdentityDir) -> None:
        self.identity = identity
        self.published: Records | None = None

    def publish(self, node_map: NodeMap, wg_public_key: str) -> None:
        credentials = self.identity.dns_credentials()
        wanted = desired_records(node_map, wg_public_key)
        if credentials is None or wanted == self.published:
            return
        host, ipv6, ipv4, port, key, vnis = wanted
        updater = DnsUpdater(
            credentials.server, credentials.port, credentials.zone, credentials.key_name, credentials.secret
        )
        try:
            updater.replace_host(host, ipv6, ipv4)
            updater.register_service(host, "wireguard", "udp", port, txt=(f"pk={key}",))
            if vnis is None:
                updater.unregister_service(host, "bgp", "tcp")
            else:
                updater.register_service(
                    host, "bgp", "tcp", BGP_PORT, txt=(f"vnis={','.join(map(str, vnis))}",)
                )
        except ZtosError as exc:
            log.warning("DNS records not published yet: %s", exc.detail)
            return
        log.info("DNS records published for %s.%s", host, credentials.zone)
        self.published = wanted
