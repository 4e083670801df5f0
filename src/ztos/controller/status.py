"""What agents report about their tenants, BGP sessions and traffic, and per-host security.

The tenant/BGP report of each node is in the store's shared state
(``STATUS_SCOPE``, one entry per node, overwritten), so every controller
replica shows what an agent reported to any of them. Shared state is not in
the change feed, so a report wakes no watcher. An unchanged report is
rewritten only every ``STATUS_REFRESH`` seconds: ``reported_at`` is when the
report last changed or was last refreshed, at most that old while the agent
reports. ``StatusBoard`` holds, as ``metrics``, the traffic counters with
their short history (``ztos.controller.metrics``), which stay in each
process's memory (see docs/architecture.md). ``host_security`` joins the
directory with the latest counters for ``GET /api/v1/security/status``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ztos.controller.metrics import MetricsBoard, NodeMetrics
from ztos.model import BgpSettings, CertificateRecord, Node, NodeStatus, Tenant

STATUS_SCOPE = "agent.status"
STATUS_REFRESH = 60.0  # seconds: how stale an unchanged report's stored time may get


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
    default_deny: bool = False  # closed before the first policy (``network configure --default-deny``)
    policy_rev: int | None = None  # the policy in force; None: none applied yet


class StatusBoard:
    """What agents report that stays in this process's memory: the traffic counters."""

    def __init__(self, metrics: MetricsBoard | None = None) -> None:
        self.metrics = metrics or MetricsBoard()


Reports = dict[str, tuple[datetime, AgentStatus]]


def entry(report: AgentStatus, now: float) -> dict[str, Any]:
    """The shared-state entry for a report received at ``now``."""
    return {"at": now, "status": report.model_dump(mode="json")}


def needs_write(stored: dict[str, Any] | None, report: AgentStatus, now: float) -> bool:
    if stored is None or stored.get("status") != report.model_dump(mode="json"):
        return True
    return now - float(stored["at"]) >= STATUS_REFRESH


def read_reports(entries: dict[str, dict[str, Any]]) -> Reports:
    return {
        node: (datetime.fromtimestamp(float(e["at"]), UTC), AgentStatus.model_validate(e["status"]))
        for node, e in entries.items()
    }


def network_status(bgp: BgpSettings | None, tenants: list[Tenant], reports: Reports) -> NetworkStatus:
    return NetworkStatus(
        bgp=bgp,
        tenants=[_tenant_status(tenant, reports) for tenant in sorted(tenants, key=lambda t: t.vni)],
        bgp_sessions={node: status.bgp for node, (_, status) in sorted(reports.items()) if status.bgp},
    )


def _tenant_status(tenant: Tenant, reports: Reports) -> TenantStatus:
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


# --- per-host security (GET /api/v1/security/status) --------------------------------------

MACSEC_NOT_AVAILABLE = "n/a"


class HostSecurity(BaseModel):
    """One host's identity and key hygiene, as an auditor checks it."""

    name: str
    status: NodeStatus
    up: bool
    wg_public_key: str
    wg_key_age_seconds: float = Field(description="since enrolment: the key is kept through renewals")
    enrolled_at: datetime
    cert_serial: str
    cert_not_after: datetime | None
    cert_expires_in_seconds: float | None
    cert_revoked: bool
    last_handshake: datetime | None = Field(description="the most recent handshake with any peer")
    last_handshake_age_seconds: float | None
    macsec: str = Field(default=MACSEC_NOT_AVAILABLE, description="tenant L2 encryption state")
    posture: dict[str, str] = Field(description="the node's posture attributes")


def host_security(
    nodes: Iterable[Node],
    certificates: Mapping[str, CertificateRecord],
    metrics: Mapping[str, NodeMetrics],
    now: datetime,
) -> list[HostSecurity]:
    return [_host(node, certificates.get(node.cert_serial), metrics.get(node.name), now) for node in nodes]


def _host(
    node: Node, cert: CertificateRecord | None, seen: NodeMetrics | None, now: datetime
) -> HostSecurity:
    ages = (
        [p.handshake_age_seconds for p in seen.peers if p.handshake_age_seconds is not None] if seen else []
    )
    handshake_age = min(ages) if ages else None
    return HostSecurity(
        name=node.name,
        status=node.status,
        up=seen.up if seen else False,
        wg_public_key=node.wg_public_key,
        wg_key_age_seconds=max(0.0, (now - node.enrolled_at).total_seconds()),
        enrolled_at=node.enrolled_at,
        cert_serial=node.cert_serial,
        cert_not_after=cert.not_after if cert else None,
        cert_expires_in_seconds=(cert.not_after - now).total_seconds() if cert else None,
        cert_revoked=cert is not None and cert.revoked_at is not None,
        last_handshake=None if handshake_age is None else now - timedelta(seconds=handshake_age),
        last_handshake_age_seconds=handshake_age,
        posture=dict(node.attributes),
    )
