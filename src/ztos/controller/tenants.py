"""Tenants, workloads and the network's BGP settings: the controller's writes.

Each function runs one directory transaction and records an audit event, so a
refused request (unknown node, duplicate VNI, bad subnet) changes nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ztos import tenancy
from ztos.audit import AuditDraft
from ztos.directory import Store, Transaction
from ztos.errors import Conflict, InvalidInput, NotFound
from ztos.model import MAX_VNI, BgpSettings, Name, NetnsName, Network, Node, Tenant, Workload


class TenantRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    vni: int | None = Field(default=None, ge=1, le=MAX_VNI)
    ipv4: str | None = None


class WorkloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    tenant: Name
    node: Name
    netns: NetnsName | None = None
    owner: Name | None = None
    tags: list[Name] = Field(default_factory=list, max_length=32)


class NetworkConfigRequest(BaseModel):
    """``ztos network configure``: BGP on or off, local AS, extra peers, EVPN; and whether
    the network is closed before its first policy. A field left out keeps its setting."""

    model_config = ConfigDict(extra="forbid")
    bgp: bool | None = None
    default_deny: bool | None = None
    asn: int | None = Field(default=None, ge=1, le=2**32 - 1)
    evpn: bool = True
    peers: list[ipaddress.IPv6Address | ipaddress.IPv4Address] = Field(default_factory=list)
    peer_asn: int | None = Field(default=None, ge=1, le=2**32 - 1)


def _network(tx: Transaction) -> Network:
    networks = tx.list(Network)
    if not networks:
        raise NotFound("the directory has no network: run 'ztos init' first")
    return networks[0]


def _tenant(tx: Transaction, name: str) -> Tenant:
    tenant = tx.get(Tenant, name)
    if tenant is None:
        raise NotFound(f"no tenant named {name!r}")
    return tenant


def _node(tx: Transaction, name: str) -> Node:
    node = tx.get(Node, name)
    if node is None:
        raise NotFound(f"no node named {name!r}")
    return node


def create_tenant(store: Store, actor: str, request: TenantRequest) -> Tenant:
    with store.transaction() as tx:
        tenants = tx.list(Tenant)
        if any(t.vni == request.vni for t in tenants):
            raise Conflict(f"VNI {request.vni} is already used by another tenant")
        tenant = Tenant(
            name=request.name,
            vni=request.vni or tenancy.next_vni(tenants),
            ipv6_prefix=tenancy.next_ipv6_prefix(_network(tx).ula_prefix, tenants),
            ipv4_prefix=tenancy.check_ipv4_subnet(request.ipv4) if request.ipv4 else None,
        )
        tx.create(tenant)
        tx.audit(AuditDraft(actor, "tenant.create", f"tenant:{tenant.name}", detail=f"vni {tenant.vni}"))
    return tenant


def delete_tenant(store: Store, actor: str, name: str) -> None:
    with store.transaction() as tx:
        _tenant(tx, name)
        for workload in tx.list(Workload):
            if workload.tenant == name:
                tx.delete(Workload, workload.name)
        tx.delete(Tenant, name)
        tx.audit(AuditDraft(actor, "tenant.delete", f"tenant:{name}"))


def set_attachment(store: Store, actor: str, name: str, node: str, attached: bool) -> Tenant:
    """Attach a tenant to a node, or detach it (which also removes its workloads there)."""
    with store.transaction() as tx:
        tenant = _tenant(tx, name)
        _node(tx, node)
        nodes = set(tenant.nodes)
        if attached:
            nodes.add(node)
        else:
            if node not in nodes:
                raise NotFound(f"tenant {name!r} is not attached to node {node!r}")
            nodes.discard(node)
            for workload in tx.list(Workload):
                if workload.tenant == name and workload.node == node:
                    tx.delete(Workload, workload.name)
        tenant = tenant.model_copy(update={"nodes": sorted(nodes)})
        tx.put(tenant)
        action = "tenant.attach" if attached else "tenant.detach"
        tx.audit(AuditDraft(actor, action, f"tenant:{name}", detail=f"node {node}"))
    return tenant


def forget_node(tx: Transaction, node: str) -> None:
    """A deleted node leaves every tenant and its workloads go: a host enrolled
    later under the same name must not inherit the old one's tenants."""
    for tenant in tx.list(Tenant):
        if node in tenant.nodes:
            tx.put(tenant.model_copy(update={"nodes": [n for n in tenant.nodes if n != node]}))
    for workload in tx.list(Workload):
        if workload.node == node:
            tx.delete(Workload, workload.name)


def add_workload(store: Store, actor: str, request: WorkloadRequest) -> Workload:
    with store.transaction() as tx:
        tenant = _tenant(tx, request.tenant)
        _node(tx, request.node)
        if request.node not in tenant.nodes:
            raise InvalidInput(
                f"tenant {tenant.name!r} is not attached to node {request.node!r}: "
                f"run 'ztos tenant attach {tenant.name} --node {request.node}' first"
            )
        ipv6, ipv4 = tenancy.workload_addresses(tenant, tx.list(Workload))
        workload = Workload(
            name=request.name,
            tenant=tenant.name,
            node=request.node,
            mac=tenancy.workload_mac(tenant.name, request.name),
            ipv6=ipv6,
            ipv4=ipv4,
            netns=request.netns,
            owner=request.owner,
            tags=request.tags,
        )
        tx.create(workload)
        tx.audit(
            AuditDraft(
                actor,
                "workload.add",
                f"workload:{workload.name}",
                detail=f"tenant {tenant.name} on {request.node}: {ipv6} {ipv4 or ''}".strip(),
            )
        )
    return workload


def remove_workload(store: Store, actor: str, name: str) -> None:
    with store.transaction() as tx:
        if tx.get(Workload, name) is None:
            raise NotFound(f"no workload named {name!r}")
        tx.delete(Workload, name)
        tx.audit(AuditDraft(actor, "workload.remove", f"workload:{name}"))


def bgp_settings(request: NetworkConfigRequest) -> BgpSettings | None:
    if not request.bgp:
        return None
    if request.asn is None:
        raise InvalidInput("--as is required with --bgp (the mesh's local AS number)")
    peers = [{"address": address, "asn": request.peer_asn or request.asn} for address in request.peers]
    try:
        return BgpSettings.model_validate({"asn": request.asn, "evpn": request.evpn, "peers": peers})
    except ValidationError as exc:
        raise InvalidInput("; ".join(str(error["msg"]) for error in exc.errors())) from exc


def configure_network(store: Store, actor: str, request: NetworkConfigRequest) -> Network:
    if request.bgp is None and request.default_deny is None:
        raise InvalidInput("nothing to configure: give --bgp/--no-bgp or --default-deny/--no-default-deny")
    if request.bgp is None and (request.asn is not None or request.peers or request.peer_asn is not None):
        raise InvalidInput("--as, --peer and --peer-as need --bgp")
    update: dict[str, object] = {}
    details = []
    if request.bgp is not None:
        settings = bgp_settings(request)
        update["bgp"] = settings
        details.append(
            "BGP off"
            if settings is None
            else f"AS {settings.asn}, EVPN {settings.evpn}, {len(settings.peers)} extra peer(s)"
        )
    if request.default_deny is not None:
        update["default_deny"] = request.default_deny
        details.append(f"default deny {'on' if request.default_deny else 'off'}")
    with store.transaction() as tx:
        network = _network(tx).model_copy(update=update)
        tx.put(network)
        detail = "; ".join(details)
        tx.audit(AuditDraft(actor, "network.configure", f"network:{network.name}", detail=detail))
    return network


@dataclass(frozen=True)
class TenantService:
    """Tenants, workloads and BGP in the controller's service layer (``Controller.tenancy``)."""

    store: Store

    def tenants(self) -> list[Tenant]:
        return sorted(self.store.list(Tenant), key=lambda t: t.vni)

    def create(self, actor: str, request: TenantRequest) -> Tenant:
        return create_tenant(self.store, actor, request)

    def delete(self, actor: str, name: str) -> None:
        delete_tenant(self.store, actor, name)

    def set_attachment(self, actor: str, name: str, node: str, attached: bool) -> Tenant:
        return set_attachment(self.store, actor, name, node, attached)

    def workloads(self) -> list[Workload]:
        return sorted(self.store.list(Workload), key=lambda w: (w.tenant, w.name))

    def add_workload(self, actor: str, request: WorkloadRequest) -> Workload:
        return add_workload(self.store, actor, request)

    def remove_workload(self, actor: str, name: str) -> None:
        remove_workload(self.store, actor, name)

    def configure_network(self, actor: str, request: NetworkConfigRequest) -> Network:
        return configure_network(self.store, actor, request)
