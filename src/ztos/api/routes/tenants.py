"""Tenants, workloads, and the network's BGP settings and status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from ztos.api.auth import ADMIN, NODES, OPERATOR_WRITE, READERS, controller_of, requires
from ztos.controller import actor_of
from ztos.controller import tenants as ops
from ztos.controller.status import AgentStatus, NetworkStatus
from ztos.model import Name, Network, Tenant, Workload
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["tenants", "network"])
Admin = Annotated[Identity, Depends(requires(ADMIN))]
Operator = Annotated[Identity, Depends(requires(OPERATOR_WRITE))]
Reader = Annotated[Identity, Depends(requires(READERS))]


class NodeRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    node: Name


@router.get("/tenants", response_model=list[Tenant])
def list_tenants(request: Request, _: Reader) -> list[Tenant]:
    return controller_of(request).tenancy.tenants()


@router.post("/tenants", response_model=Tenant, status_code=201)
def create_tenant(body: ops.TenantRequest, request: Request, who: Admin) -> Tenant:
    """Create a tenant; VNI and IPv6 /64 are allocated when not given."""
    return controller_of(request).tenancy.create(actor_of(who), body)


@router.delete("/tenants/{name}", status_code=204)
def delete_tenant(name: Name, request: Request, who: Admin) -> None:
    controller_of(request).tenancy.delete(actor_of(who), name)


@router.post("/tenants/{name}/attach", response_model=Tenant)
def attach(name: Name, body: NodeRef, request: Request, who: Operator) -> Tenant:
    """Serve the tenant on a node: VXLAN, bridge and tenant namespace appear there."""
    return controller_of(request).tenancy.set_attachment(actor_of(who), name, body.node, True)


@router.post("/tenants/{name}/detach", response_model=Tenant)
def detach(name: Name, body: NodeRef, request: Request, who: Operator) -> Tenant:
    """Stop serving the tenant on a node; its workloads there are removed too."""
    return controller_of(request).tenancy.set_attachment(actor_of(who), name, body.node, False)


@router.get("/workloads", response_model=list[Workload])
def list_workloads(request: Request, _: Reader) -> list[Workload]:
    return controller_of(request).tenancy.workloads()


@router.post("/workloads", response_model=Workload, status_code=201)
def add_workload(body: ops.WorkloadRequest, request: Request, who: Operator) -> Workload:
    """Attach a workload to a tenant on a node; its addresses and MAC are allocated."""
    return controller_of(request).tenancy.add_workload(actor_of(who), body)


@router.delete("/workloads/{name}", status_code=204)
def remove_workload(name: Name, request: Request, who: Operator) -> None:
    controller_of(request).tenancy.remove_workload(actor_of(who), name)


@router.post("/network/configure", response_model=Network)
def configure(body: ops.NetworkConfigRequest, request: Request, who: Admin) -> Network:
    """BGP parameters: local AS, extra peers, EVPN on/off (``bgp: false`` = embedded mode)."""
    return controller_of(request).tenancy.configure_network(actor_of(who), body)


@router.get("/network/status", response_model=NetworkStatus)
def network_status(request: Request, _: Reader) -> NetworkStatus:
    """Per tenant: VNI, nodes, remote VTEPs and learned MACs; BGP sessions when on."""
    return controller_of(request).network_status()


@router.put("/nodes/self/status", status_code=204)
def report_status(
    body: AgentStatus, request: Request, who: Annotated[Identity, Depends(requires(NODES))]
) -> None:
    """An agent's tenant and BGP state after its last reconcile."""
    controller_of(request).put_agent_status(who.name, body)
