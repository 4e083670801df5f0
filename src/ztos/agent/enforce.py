"""Policy enforcement on this host: compile the network's policy into nftables, apply it.

The controller ships the active policy text and a snapshot of the identities
in every node map; each host compiles its own tables (``ztos.policy``):
``inet ztos-host`` for traffic to its overlay addresses and one ``bridge
ztos-t-<tenant>`` per tenant it serves (micro-segmentation on the tenant
bridge). The adapter swaps a table atomically when its structure changes and
only updates set elements when membership or posture changed, so a removed
member loses its flows on the next packet. Until the first policy is applied
ZTOS enforces nothing (a fresh network is open for bootstrapping); from then
on, everything not allowed is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ztos.dataplane import links, nftables
from ztos.dataplane.tenant_state import TenantsSpec
from ztos.model import utcnow
from ztos.netmap import NodeMap
from ztos.policy import (
    HostPorts,
    Policy,
    Snapshot,
    TenantPorts,
    compile_base,
    compile_gateway,
    compile_host,
    compile_tenant,
)
from ztos.policy.compile import TENANT_TABLE_PREFIX, tenant_table
from ztos.policy.loader import KnownNames, load_policy

log = logging.getLogger("ztos.agent.enforce")


@dataclass
class Enforcer:
    ifname: str
    listen_port: int
    parsed: dict[int, Policy] = field(default_factory=dict)
    conntrack: bool | None = None

    def policy(self, bundle: dict[str, Any]) -> Policy:
        rev = int(bundle["rev"])
        if rev not in self.parsed:
            known = KnownNames(groups=frozenset(str(g) for g in bundle.get("groups", ())))
            self.parsed = {rev: load_policy(str(bundle["text"]), f"policy revision {rev}", known)}
        return self.parsed[rev]

    def base(self, node_map: NodeMap, tenants: TenantsSpec) -> dict[str, Any]:
        """The ``inet ztos-underlay`` table: VXLAN, BGP and overlay only over WireGuard."""
        neighbors = node_map.bgp.neighbors if node_map.bgp else ()
        external = [n.address for n in neighbors if n.remote_as is not None]
        return compile_base(
            HostPorts(wg_ifname=self.ifname, listen_port=self.listen_port),
            [str(node_map.overlay_ipv6), str(node_map.overlay_ipv4)],
            bgp_peers=external,
            vxlan_ports=[t.dstport for t in tenants.tenants],
            mesh_prefixes=node_map.routes,
        )

    def apply_base(self, node_map: NodeMap, tenants: TenantsSpec) -> list[str]:
        """Install the base table before any tenant exists, whether or not a policy does."""
        results = nftables.apply(self.base(node_map, tenants))
        return [
            f"~ nft {r.family} {r.table}: {r.action} (underlay isolation)"
            for r in results
            if r.action != "unchanged"
        ]

    def apply_gateways(self, tenants: TenantsSpec) -> list[str]:
        """Each tenant's gateway namespace drops what is not ping or ND (it runs no service)."""
        applied = []
        for tenant in tenants.tenants:
            for r in nftables.apply(compile_gateway(), netns=tenant.vrf_netns):
                if r.action != "unchanged":
                    applied.append(f"~ nft {r.family} {r.table} in {tenant.vrf_netns}: {r.action}")
        return applied

    def plan_gateways(self, tenants: TenantsSpec) -> list[str]:
        """What ``apply_gateways`` would change (a namespace not made yet: all of it)."""
        lines = []
        for tenant in tenants.tenants:
            if not links.netns_exists(tenant.vrf_netns):
                lines.append(f"~ nft gateway table in {tenant.vrf_netns}: create (with the namespace)")
                continue
            lines += nftables.plan(compile_gateway(), netns=tenant.vrf_netns)
        return lines

    def plan_base(self, node_map: NodeMap, tenants: TenantsSpec) -> list[str]:
        """What ``apply_base`` would change, read from the installed table."""
        return nftables.plan(self.base(node_map, tenants))

    def apply(self, node_map: NodeMap, tenants: TenantsSpec) -> list[str]:
        if node_map.policy is None:
            return []
        results = [r for ruleset in self.policy_rulesets(node_map, tenants) for r in nftables.apply(ruleset)]
        applied = [
            f"~ nft {r.family} {r.table}: {r.action} (policy rev {node_map.policy['rev']})"
            for r in results
            if r.action != "unchanged"
        ]
        return applied + self.remove_stale({tenant_table(t.name) for t in tenants.tenants})

    def plan(self, node_map: NodeMap, tenants: TenantsSpec) -> list[str]:
        """What ``apply`` would change in the policy tables, without changing them."""
        if node_map.policy is None:
            return []
        lines = [
            line for ruleset in self.policy_rulesets(node_map, tenants) for line in nftables.plan(ruleset)
        ]
        return lines + [
            f"- nft bridge {t} (tenant detached)"
            for t in self.stale({tenant_table(t.name) for t in tenants.tenants})
        ]

    def policy_rulesets(self, node_map: NodeMap, tenants: TenantsSpec) -> list[dict[str, Any]]:
        """The host table and one bridge table per tenant, compiled for now."""
        assert node_map.policy is not None
        policy = self.policy(node_map.policy)
        snapshot = Snapshot.from_data(node_map.policy["snapshot"])
        now = utcnow()
        if self.conntrack is None:
            self.conntrack = nftables.bridge_conntrack()
        rulesets = [
            compile_host(
                policy,
                snapshot,
                node_map.name,
                now=now,
                ports=HostPorts(wg_ifname=self.ifname, listen_port=self.listen_port),
            )
        ]
        for tenant in tenants.tenants:
            ports = TenantPorts(
                tenant.vxlan, tenant.gateway_port, {w.name: w.host_port for w in tenant.workloads}
            )
            rulesets.append(
                compile_tenant(
                    policy, snapshot, node_map.name, tenant.name, ports, now=now, conntrack=self.conntrack
                )
            )
        return rulesets

    def remove_stale(self, wanted: set[str]) -> list[str]:
        """Drop the tables of tenants this host no longer serves."""
        return [
            f"- nft bridge {t} (tenant detached)"
            for t in self.stale(wanted)
            if nftables.flush_table("bridge", t)
        ]

    @staticmethod
    def stale(wanted: set[str]) -> list[str]:
        """Installed tenant tables of tenants this host no longer serves."""
        installed = {
            obj["table"]["name"]
            for obj in nftables.list_ruleset()["nftables"]
            if "table" in obj and obj["table"].get("family") == "bridge"
        }
        return sorted(t for t in installed if t.startswith(TENANT_TABLE_PREFIX) and t not in wanted)
