"""Policy: the language, its evaluation and its compilation to nftables (pure).

Shape::

    model      Policy, Rule, Selector, PortSpec, conditions (pydantic)
    loader     load_policy[_file] / policy_from_data -> Policy, or PolicyInvalid
               listing every problem (file, line, path, value); dump, digest
    snapshot   Snapshot: workloads, nodes, users, directory groups (plain data)
    resolve    Resolver: selector -> identities, conditions; clauses; time windows
    evaluate   decide(policy, snapshot, src, dst, proto, port, now) -> Decision
    compile    compile_host / compile_tenant -> nft JSON; diff_sets; digests
    drops      name_drop: the identities a ``ztos-drop`` kernel log line is about
    changes    diff_policies: what a new policy revision changes

Nothing here does I/O: ``ztos.dataplane.nftables`` applies what ``compile``
builds, and the controller and agent feed it snapshots. The only imports are
``ztos.model``, ``ztos.errors``, pydantic and PyYAML.
"""

from ztos.policy.changes import diff_policies
from ztos.policy.compile import (
    BASE_TABLE,
    HOST_TABLE,
    HostPorts,
    TenantPorts,
    compile_base,
    compile_gateway,
    compile_host,
    compile_tenant,
    diff_sets,
    ruleset_digest,
    structure_digest,
    tenant_table,
)
from ztos.policy.drops import DropEvent, name_drop
from ztos.policy.evaluate import Decision, decide
from ztos.policy.loader import (
    KnownNames,
    PolicyInvalid,
    Problem,
    dump_policy,
    load_policy,
    load_policy_file,
    policy_digest,
    policy_from_data,
    port_of,
)
from ztos.policy.model import Policy, PortSpec, Rule, Selector
from ztos.policy.resolve import Resolver, next_change
from ztos.policy.snapshot import NodeInfo, Snapshot, UserInfo, WorkloadInfo

__all__ = [
    "BASE_TABLE",
    "HOST_TABLE",
    "Decision",
    "DropEvent",
    "HostPorts",
    "KnownNames",
    "NodeInfo",
    "Policy",
    "PolicyInvalid",
    "PortSpec",
    "Problem",
    "Resolver",
    "Rule",
    "Selector",
    "Snapshot",
    "TenantPorts",
    "UserInfo",
    "WorkloadInfo",
    "compile_base",
    "compile_gateway",
    "compile_host",
    "compile_tenant",
    "decide",
    "diff_policies",
    "diff_sets",
    "dump_policy",
    "load_policy",
    "load_policy_file",
    "name_drop",
    "next_change",
    "policy_digest",
    "policy_from_data",
    "port_of",
    "ruleset_digest",
    "structure_digest",
    "tenant_table",
]
