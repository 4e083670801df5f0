"""What agents report about their tenants and BGP sessions, for ``network status``.

Reports are kept in the controller's memory, not in the directory: they change
all the time and writing them would wake every watcher on every report. A
controller that restarts shows nothing until the agents' next report (one
reconcile interval).
"""

from __future__ import annotations

import threading
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from ztos.model import BgpSettings, Tenant, utcnow


class TenantReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=63)
    vni: int
    remote_vteps: list[str] = Field(default_factory=list, max_length=4096)
    macs: list[str] = Field(default_factory=list, max_length=65536)


class BgpSessionReport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    peer: str = Field(max_length=64)
    state: str = Field(max_length=32)
    prefixes_received: int | None = None


class AgentStatus(BaseModel):
    """PUT by an agent after each reconcile."""

    model_config = ConfigDict(extra="forbid")
    tenants: list[TenantReport] = Field(default_factory=list, max_length=4096)
    bgp: list[BgpSessionReport] = Field(default_factory=list, max_length=4096)


class NodeTenantStatus(BaseModel):
    node: str
    remote_vteps: list[str]
    macs: list[str]
    reported_at: datetime | None


class TenantStatus(BaseModel):
    name: str
    vni: int
    ipv6_prefix: str
    ipv4_prefix: str | None
    nodes: list[NodeTenantStatus]


class NetworkStatus(BaseModel):
    bgp: BgpSettings | None
    tenants: list[TenantStatus]
    bgp_sessions: dict[str, list[BgpSessionReport]]


class StatusBoard:
    """The latest report of each node, thread-safe (API handlers run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[datetime, AgentStatus]] = {}

    def put(self, node: str, status: AgentStatus) -> None:
        with self._lock:
            self._reports[node] = (utcnow(), status)

    def network_status(self, bgp: BgpSettings | None, tenants: list[Tenant]) -> NetworkStatus:
        with self._lock:
            reports = dict(self._reports)
        return NetworkStatus(
            bgp=bgp,
            tenants=[self._tenant_status(tenant, reports) for tenant in sorted(tenants, key=lambda t: t.vni)],
            bgp_sessions={node: status.bgp for node, (_, status) in sorted(reports.items()) if status.bgp},
        )

    @staticmethod
    def _tenant_status(tenant: Tenant, reports: dict[str, tuple[datetime, AgentStatus]]) -> TenantStatus:
        per_node = []
        for node in tenant.nodes:
            at, status = reports.get(node, (None, AgentStatus()))
            report = next((t for t in status.tenants if t.name == tenant.name), None)
            per_node.append(
                NodeTenantStatus(
                    node=node,
                    remote_vteps=report.remote_vteps if report else [],
                    macs=report.macs if report else [],
                    reported_at=at if report else None,
                )
            )
        return TenantStatus(
            name=tenant.name,
            vni=tenant.vni,
            ipv6_prefix=str(tenant.ipv6_prefix),
            ipv4_prefix=str(tenant.ipv4_prefix) if tenant.ipv4_prefix else None,
            nodes=per_node,
        )
