"""The host data plane: WireGuard mesh interface, tenant segments, links, MTU.

Shape (see DESIGN.md, "Desired state, diff, apply")::

    state      InterfaceSpec/PeerSpec (desired), ObservedInterface/ObservedPeer
    plan       plan(desired, observed) -> [Operation]          pure, printable
    reconcile  observe -> plan -> Executor.apply; teardown     the only I/O driver
    adapters   links (pyroute2/netlink), wireguard (wg, UAPI, wireguard-go),
               mtu (ping), keys (cryptography), nsexec (ip netns exec)

    tenant_state      TenantsSpec/TenantSpec/WorkloadSpec (desired, validated)
    tenant_plan       plan_tenants(desired, observed) -> [TenantOperation], pure
    tenant_reconcile  observe_tenants -> plan_tenants -> executor

The agent builds an ``InterfaceSpec`` from its node map and calls
``reconcile(spec)`` (``netns=None`` when the agent already runs inside the
node's namespace); ``reconcile(spec, executor=RecordingExecutor())`` is the
dry run behind ``ztos agent plan``. Tenants work the same way:
``reconcile_tenants(tenants_spec, netns)``, with ``TenantRecordingExecutor``
for the dry run; detaching a tenant is reconciling without it.
"""

from ztos.dataplane.keys import generate_keypair, public_key_of, read_private_key, write_private_key
from ztos.dataplane.mtu import overlay_mtu, path_mtu, wireguard_mtu
from ztos.dataplane.plan import (
    AddAddress,
    AddPeer,
    AddRoute,
    CreateInterface,
    DeleteInterface,
    Operation,
    RemoveAddress,
    RemovePeer,
    RemoveRoute,
    SetListenPort,
    SetMtu,
    SetPrivateKey,
    SetUp,
    UpdatePeer,
    plan,
)
from ztos.dataplane.reconcile import (
    Executor,
    HostExecutor,
    RecordingExecutor,
    StepFailed,
    default_launcher,
    observe,
    reconcile,
    teardown,
    wait_for_handshake,
)
from ztos.dataplane.state import (
    Backend,
    InterfaceSpec,
    ObservedInterface,
    ObservedPeer,
    PeerSpec,
)
from ztos.dataplane.tenant_plan import ObservedTenants, TenantOperation, plan_tenants, tenant_mtu
from ztos.dataplane.tenant_reconcile import (
    TenantExecutor,
    TenantHostExecutor,
    TenantRecordingExecutor,
    TenantStepFailed,
    observe_tenants,
    reconcile_tenants,
)
from ztos.dataplane.tenant_state import TenantSpec, TenantsSpec, WorkloadSpec
from ztos.dataplane.wireguard import WireGuardDevice, WireGuardGo, detect_backend, sweep

__all__ = [
    "AddAddress",
    "AddPeer",
    "AddRoute",
    "Backend",
    "CreateInterface",
    "DeleteInterface",
    "Executor",
    "HostExecutor",
    "InterfaceSpec",
    "ObservedInterface",
    "ObservedPeer",
    "ObservedTenants",
    "Operation",
    "PeerSpec",
    "RecordingExecutor",
    "RemoveAddress",
    "RemovePeer",
    "RemoveRoute",
    "SetListenPort",
    "SetMtu",
    "SetPrivateKey",
    "SetUp",
    "StepFailed",
    "TenantExecutor",
    "TenantHostExecutor",
    "TenantOperation",
    "TenantRecordingExecutor",
    "TenantSpec",
    "TenantStepFailed",
    "TenantsSpec",
    "UpdatePeer",
    "WireGuardDevice",
    "WireGuardGo",
    "WorkloadSpec",
    "default_launcher",
    "detect_backend",
    "generate_keypair",
    "observe",
    "observe_tenants",
    "overlay_mtu",
    "path_mtu",
    "plan",
    "plan_tenants",
    "public_key_of",
    "read_private_key",
    "reconcile",
    "reconcile_tenants",
    "sweep",
    "teardown",
    "tenant_mtu",
    "wait_for_handshake",
    "wireguard_mtu",
    "write_private_key",
]
