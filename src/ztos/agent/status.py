"""What the agent tells the controller about its tenants and BGP sessions.

Read from the kernel FDB (remote VTEPs and MACs on each tenant's VXLAN and
workload ports) and from FRR when it runs; the controller shows it in
``ztos network status``.
"""

from __future__ import annotations

from ztos.agent.tenants import DEVICE_PREFIX, workload_port
from ztos.controller.status import AgentStatus, BgpSessionReport, TenantReport
from ztos.dataplane import links
from ztos.errors import ZtosError
from ztos.netmap import MapTenant, NodeMap
from ztos.routing.frr import FrrInstance

ZERO_MAC = "00:00:00:00:00:00"


def tenant_report(tenant: MapTenant, fdb: tuple[links.FdbEntry, ...]) -> TenantReport:
    vxlan = f"{DEVICE_PREFIX}v{tenant.vni}"
    ports = {vxlan, *(workload_port(w.name) for w in tenant.workloads)}
    remote = sorted({e.dst for e in fdb if e.ifname == vxlan and e.dst})
    macs = sorted(
        {e.mac for e in fdb if e.ifname in ports and e.mac != ZERO_MAC and e.state != "permanent"}
        - {tenant.gateway_mac}
    )
    return TenantReport(name=tenant.name, vni=tenant.vni, remote_vteps=remote, macs=macs)


def tenant_status(node_map: NodeMap, frr: FrrInstance | None) -> AgentStatus:
    fdb = links.list_fdb() if node_map.tenants else ()
    sessions: list[BgpSessionReport] = []
    if frr is not None:
        try:
            sessions = [
                BgpSessionReport(peer=p.address, state=p.state, prefixes_received=p.prefixes_received)
                for p in frr.bgp_summary()
            ]
        except ZtosError:
            sessions = []
    return AgentStatus(tenants=[tenant_report(t, fdb) for t in node_map.tenants], bgp=sessions)
