"""Table tests of the tenant planner, marks, MTU arithmetic, spec checks and executors (no root)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from itertools import count

import pytest

from ztos.dataplane import links
from ztos.dataplane.tenant_plan import (
    GATEWAY_PORT_FLAGS,
    WORKLOAD_PORT_FLAGS,
    AddFlood,
    EnsureBridge,
    EnsureGateway,
    EnsureWorkload,
    Leftover,
    Mark,
    ObservedBridge,
    ObservedLink,
    ObservedNamespace,
    ObservedNsLink,
    ObservedTenants,
    ObservedVeth,
    ObservedVxlan,
    RemoveFlood,
    RemoveLeftovers,
    TenantOperation,
    parse_mark,
    plan_tenants,
    tenant_mtu,
    vxlan_port_flags,
)
from ztos.dataplane.tenant_reconcile import TenantHostExecutor, TenantRecordingExecutor, TenantStepFailed
from ztos.dataplane.tenant_state import TenantSpec, TenantsSpec, WorkloadSpec
from ztos.errors import InvalidInput, ToolError

WEB = WorkloadSpec(
    name="web",
    netns="ztos-w-web",
    host_port="zt-wweb",
    mac="02:aa:00:00:00:10",
    addresses=("10.20.0.10/24", "fd00:a::10/64"),
    gateways=("10.20.0.1", "fd00:a::1"),
)
CTR = WorkloadSpec(
    name="ctr",
    netns="docker-1234",
    host_port="zt-wctr",
    mac="02:aa:00:00:00:11",
    addresses=("10.20.0.11/24",),
    gateways=("10.20.0.1",),
    managed=False,
)
BLUE = TenantSpec(
    name="blue",
    vni=100,
    vxlan="zt-v100",
    bridge="zt-b100",
    gateway_port="zt-g100",
    vrf_netns="ztos-t-blue",
    local_vtep="fd00::1",
    mtu=1350,
    learning=True,
    flood=("fd00::2", "fd00::3"),
    gateway_mac="02:00:5e:00:01:64",
    gateway_addresses=("10.20.0.1/24", "fd00:a::1/64"),
    workloads=(WEB, CTR),
)
GREEN = TenantSpec(
    name="green",
    vni=200,
    vxlan="zt-v200",
    bridge="zt-b200",
    gateway_port="zt-g200",
    vrf_netns="ztos-t-green",
    local_vtep="10.99.0.1",
    mtu=1370,
    learning=False,
    flood=None,
    gateway_mac="02:00:5e:00:01:c8",
    gateway_addresses=("10.30.0.1/24",),
)
SPEC = TenantsSpec((BLUE, GREEN))


def converged(spec: TenantsSpec = SPEC) -> ObservedTenants:
    """What a host that applied ``spec`` perfectly would report."""
    indexes = count(10)
    observed = ObservedTenants()
    for t in spec.tenants:
        observed = _with_tenant(observed, t, indexes)
    return observed


def _with_tenant(observed: ObservedTenants, t: TenantSpec, indexes: Iterator[int]) -> ObservedTenants:
    mark = str(Mark(t.name))
    bridge = ObservedBridge(t.bridge, t.mtu, alias=mark)
    vxlan = ObservedVxlan(
        t.vxlan, t.vni, t.local_vtep, t.learning, t.dstport, t.mtu,
        master=t.bridge, port=vxlan_port_flags(t), alias=mark, flood=t.flood or (),
    )  # fmt: skip
    port, gw0 = _pair(t.gateway_port, "gw0", t.bridge, t.mtu, t.gateway_mac, mark, indexes)
    gw0 = replace(gw0, addresses=t.gateway_addresses)
    veths = [replace(port, port=GATEWAY_PORT_FLAGS, pinned=(t.gateway_mac,))]
    namespaces = [ObservedNamespace(t.vrf_netns, (gw0,), forwarding=True)]
    for w in t.workloads:
        host, eth0 = _pair(w.host_port, "eth0", t.bridge, t.mtu, w.mac, str(Mark(t.name, w.name)), indexes)
        veths.append(replace(host, port=WORKLOAD_PORT_FLAGS))
        namespaces.append(
            ObservedNamespace(w.netns, (replace(eth0, addresses=w.addresses, gateways=w.gateways),))
        )
    return replace(
        observed,
        vxlans=(*observed.vxlans, vxlan),
        bridges=(*observed.bridges, bridge),
        veths=(*observed.veths, *veths),
        namespaces=(*observed.namespaces, *namespaces),
    )


def _pair(
    host: str, inner: str, bridge: str, mtu: int, mac: str, mark: str, indexes: Iterator[int]
) -> tuple[ObservedVeth, ObservedNsLink]:
    a, b = next(indexes), next(indexes)
    port = ObservedVeth(host, a, b, mtu, master=bridge, alias=mark)
    return port, ObservedNsLink(inner, b, "veth", a, mac, mtu, alias=mark)


def lines(observed: ObservedTenants, desired: TenantsSpec = SPEC) -> list[str]:
    return [str(op) for op in plan_tenants(desired, observed)]


def edit_vxlan(observed: ObservedTenants, name: str, **changes: object) -> ObservedTenants:
    vxlans = tuple(replace(v, **changes) if v.name == name else v for v in observed.vxlans)  # type: ignore[arg-type]
    return replace(observed, vxlans=vxlans)


def edit_veth(observed: ObservedTenants, name: str, **changes: object) -> ObservedTenants:
    veths = tuple(replace(v, **changes) if v.name == name else v for v in observed.veths)  # type: ignore[arg-type]
    return replace(observed, veths=veths)


def edit_inner(observed: ObservedTenants, netns: str, **changes: object) -> ObservedTenants:
    namespaces = tuple(
        replace(n, links=tuple(replace(link, **changes) for link in n.links)) if n.name == netns else n  # type: ignore[arg-type]
        for n in observed.namespaces
    )
    return replace(observed, namespaces=namespaces)


def without(observed: ObservedTenants, *names: str) -> ObservedTenants:
    """Drop links and namespaces by name (what ``ip link del``/``ip netns del`` leave)."""
    return replace(
        observed,
        vxlans=tuple(v for v in observed.vxlans if v.name not in names),
        bridges=tuple(b for b in observed.bridges if b.name not in names),
        veths=tuple(v for v in observed.veths if v.name not in names),
        namespaces=tuple(n for n in observed.namespaces if n.name not in names),
    )


# --- planner: converged and fresh -------------------------------------------------------


def test_converged_host_gives_empty_plan() -> None:
    assert plan_tenants(SPEC, converged()) == []


def test_equivalent_spellings_are_converged() -> None:
    spelled = replace(
        BLUE,
        local_vtep="FD00:0::1",
        flood=("fd00:0::3", "FD00::2"),
        gateway_mac="02:00:5E:00:01:64",
        gateway_addresses=("fd00:a:0::1/64", "10.20.0.1/24"),
    )
    assert plan_tenants(replace(SPEC, tenants=(spelled, GREEN)), converged()) == []


def test_fresh_host_creates_everything_in_order() -> None:
    assert lines(ObservedTenants()) == [
        "+ tenant blue vni 100: bridge zt-b100 mtu 1350",
        "+ tenant blue vni 100: vxlan zt-v100 local fd00::1 dstport 4789 (learning) on zt-b100",
        "+ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 02:00:5e:00:01:64 (10.20.0.1/24, fd00:a::1/64)",
        "+ flood zt-v100 -> fd00::2",
        "+ flood zt-v100 -> fd00::3",
        "+ workload web in ztos-w-web (10.20.0.10/24, fd00:a::10/64)",
        "+ tenant green vni 200: bridge zt-b200 mtu 1370",
        "+ tenant green vni 200: vxlan zt-v200 local 10.99.0.1 dstport 4789 "
        "(evpn: no learning, neigh_suppress) on zt-b200",
        "+ tenant green: gateway zt-g200 <-> ztos-t-green/gw0 02:00:5e:00:01:c8 (10.30.0.1/24)",
        "+ workload ctr in docker-1234 (10.20.0.11/24)",
    ]


def test_plan_is_stable_whatever_the_input_order() -> None:
    shuffled = TenantsSpec((GREEN, replace(BLUE, workloads=(CTR, WEB), flood=("fd00::3", "fd00::2"))))
    assert lines(ObservedTenants(), shuffled) == lines(ObservedTenants(), SPEC)


# --- planner: drift ----------------------------------------------------------------------

Edit = Callable[[ObservedTenants], ObservedTenants]

DRIFT: list[tuple[str, Edit, list[str]]] = [
    (
        "vxlan mtu",
        lambda o: edit_vxlan(o, "zt-v100", mtu=1500),
        ["~ tenant blue: vxlan zt-v100 (fix: mtu 1500 -> 1350)"],
    ),
    (
        "vxlan released from its bridge",
        lambda o: edit_vxlan(o, "zt-v100", master=None, port=None),
        ["~ tenant blue: vxlan zt-v100 (fix: master, port flags)"],
    ),
    (
        "vxlan down, IPv6 on, mark lost",
        lambda o: edit_vxlan(o, "zt-v200", up=False, ipv6=True, alias=None),
        ["~ tenant green: vxlan zt-v200 (fix: up, ipv6, mark)"],
    ),
    (
        "local VTEP changed: recreate, flood list again",
        lambda o: edit_vxlan(o, "zt-v100", local="fd00::9"),
        [
            "- tenant blue: vxlan zt-v100 (recreate: local fd00::9 -> fd00::1)",
            "+ tenant blue vni 100: vxlan zt-v100 local fd00::1 dstport 4789 (learning) on zt-b100",
            "+ flood zt-v100 -> fd00::2",
            "+ flood zt-v100 -> fd00::3",
        ],
    ),
    (
        "learning mode changed: recreate",
        lambda o: edit_vxlan(o, "zt-v200", learning=True),
        [
            "- tenant green: vxlan zt-v200 (recreate: learning on -> off)",
            "+ tenant green vni 200: vxlan zt-v200 local 10.99.0.1 dstport 4789 (evpn: no learning, "
            "neigh_suppress) on zt-b200",
        ],
    ),
    (
        "flood list drift: add before remove",
        lambda o: edit_vxlan(o, "zt-v100", flood=("fd00::3", "fd00::7")),
        ["+ flood zt-v100 -> fd00::2", "- flood zt-v100 -> fd00::7"],
    ),
    (
        "EVPN flood entries are FRR's",
        lambda o: edit_vxlan(o, "zt-v200", flood=("10.99.0.2",)),
        [],
    ),
    (
        "bridge got an address and IPv6",
        lambda o: replace(
            o, bridges=(replace(o.bridges[0], addresses=("192.0.2.1/24",), ipv6=True), o.bridges[1])
        ),
        ["~ tenant blue: bridge zt-b100 (fix: ipv6, addresses)"],
    ),
    (
        "bridge deleted: vxlan and ports lost their master",
        lambda o: edit_veth(
            edit_veth(edit_vxlan(without(o, "zt-b100"), "zt-v100", master=None), "zt-g100", master=None),
            "zt-wweb",
            master=None,
        ),
        [
            "+ tenant blue vni 100: bridge zt-b100 mtu 1350",
            "~ tenant blue: vxlan zt-v100 (fix: master)",
            "~ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 (fix: port master)",
            "~ workload web in ztos-w-web (fix: port master)",
        ],
    ),
    (
        "gateway veth deleted by hand",
        lambda o: edit_inner(without(o, "zt-g100"), "ztos-t-blue", name="gone"),
        ["+ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 02:00:5e:00:01:64 (10.20.0.1/24, fd00:a::1/64)"],
    ),
    (
        "gateway MAC unpinned, isolation off",
        lambda o: edit_veth(o, "zt-g100", pinned=(), port=WORKLOAD_PORT_FLAGS),
        ["~ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 (fix: port flags, fdb)"],
    ),
    (
        "a stale MAC pinned on the gateway port",
        lambda o: edit_veth(o, "zt-g100", pinned=("02:00:5e:00:01:64", "02:00:5e:00:01:99")),
        ["~ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 (fix: fdb)"],
    ),
    (
        "gw0 MAC and addresses changed",
        lambda o: edit_inner(o, "ztos-t-blue", mac="02:00:00:00:00:01", addresses=("10.20.0.1/24",)),
        ["~ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 (fix: mac, addresses)"],
    ),
    (
        "tenant namespace lost forwarding",
        lambda o: replace(
            o, namespaces=tuple(replace(n, forwarding=False, lo_up=False) for n in o.namespaces)
        ),
        [
            "~ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 (fix: lo, forwarding)",
            "~ workload web in ztos-w-web (fix: lo)",
            "~ tenant green: gateway zt-g200 <-> ztos-t-green/gw0 (fix: lo, forwarding)",
            "~ workload ctr in docker-1234 (fix: lo)",
        ],
    ),
    (
        "gw0 paired with something else",
        lambda o: edit_inner(o, "ztos-t-blue", peer_index=999),
        ["~ tenant blue: gateway zt-g100 <-> ztos-t-blue/gw0 (fix: veth)"],
    ),
    (
        "workload lost its default routes",
        lambda o: edit_inner(o, "ztos-w-web", gateways=("10.20.0.1",)),
        ["~ workload web in ztos-w-web (fix: routes)"],
    ),
    (
        "managed workload namespace deleted",
        lambda o: without(o, "ztos-w-web", "zt-wweb"),
        ["+ workload web in ztos-w-web (10.20.0.10/24, fd00:a::10/64)"],
    ),
    (
        "unmanaged namespace present, eth0 gone",
        lambda o: without(o, "zt-wctr", "docker-1234"),
        ["+ workload ctr in docker-1234 (10.20.0.11/24)"],
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [(e, x) for _, e, x in DRIFT], ids=[d[0] for d in DRIFT])
def test_drift_is_repaired(edit: Edit, expected: list[str]) -> None:
    assert lines(edit(converged())) == expected


def test_replace_is_set_only_when_a_stale_end_exists() -> None:
    unpaired = plan_tenants(SPEC, edit_inner(converged(), "ztos-t-blue", peer_index=999))
    assert isinstance(unpaired[0], EnsureGateway) and unpaired[0].replace
    fresh = plan_tenants(SPEC, without(converged(), "zt-wweb", "ztos-w-web"))
    assert isinstance(fresh[0], EnsureWorkload) and fresh[0].new and not fresh[0].replace


def test_flood_operations_carry_the_tenant() -> None:
    ops = plan_tenants(SPEC, edit_vxlan(converged(), "zt-v100", flood=("fd00::2", "fd00::9")))
    assert ops == [AddFlood("blue", "zt-v100", "fd00::3"), RemoveFlood("blue", "zt-v100", "fd00::9")]


# --- planner: leftovers and foreign objects --------------------------------------------


def test_detached_tenant_is_removed_as_one_group() -> None:
    only_green = TenantsSpec((GREEN,))
    ops = plan_tenants(only_green, converged())
    assert [str(op) for op in ops] == [
        "- tenant blue (detached): port zt-wctr, port zt-wweb, gateway zt-g100, vxlan zt-v100, "
        "bridge zt-b100, netns ztos-t-blue, netns ztos-w-web"
    ]
    assert isinstance(ops[0], RemoveLeftovers)
    assert Leftover("netns", "docker-1234") not in ops[0].items, "an unmanaged namespace is not ZTOS's"


def test_removed_workload_is_removed_alone() -> None:
    spec = TenantsSpec((replace(BLUE, workloads=(CTR,)), GREEN))
    assert lines(converged(), spec) == [
        "- workload web of tenant blue (not desired): port zt-wweb, netns ztos-w-web"
    ]


def test_foreign_objects_are_never_touched() -> None:
    foreign = replace(
        converged(),
        bridges=(*converged().bridges, ObservedBridge("br0", 1500), ObservedBridge("ztadmin", 1500)),
        others=(ObservedLink("ztos0", "wireguard"), ObservedLink("eth0", None)),
        namespaces=(*converged().namespaces, ObservedNamespace("admin-lab"), ObservedNamespace("ztl-x-h1")),
    )
    assert plan_tenants(SPEC, foreign) == []
    assert plan_tenants(TenantsSpec(()), foreign) != []
    assert all("br0" not in line and "ztadmin" not in line for line in lines(foreign, TenantsSpec(())))


def test_unmarked_and_wrong_kind_leftovers() -> None:
    odd = replace(
        converged(),
        others=(ObservedLink("zt-b100x", "dummy"),),
        vxlans=(*converged().vxlans, ObservedVxlan("zt-wweb2", 5, "fd00::1", True, 4789, 1500)),
        namespaces=(*converged().namespaces, ObservedNamespace("ztos-old")),
    )
    assert lines(odd) == [
        "- unmarked objects (ZTOS-named, not desired): link zt-b100x, vxlan zt-wweb2, netns ztos-old"
    ]


def test_a_desired_name_of_the_wrong_kind_is_replaced() -> None:
    observed = without(converged(), "zt-b100")
    observed = replace(
        observed, vxlans=(*observed.vxlans, ObservedVxlan("zt-b100", 7, "fd00::1", True, 4789, 1350))
    )
    got = lines(edit_vxlan(observed, "zt-v100", master=None), SPEC)
    assert got[:3] == [
        "- unmarked objects (ZTOS-named, not desired): vxlan zt-b100",
        "+ tenant blue vni 100: bridge zt-b100 mtu 1350",
        "~ tenant blue: vxlan zt-v100 (fix: master)",
    ]


def test_leftovers_come_first_and_unmanaged_workloads_last() -> None:
    observed = without(converged(), "zt-wctr", "docker-1234", "zt-v200")
    observed = replace(observed, namespaces=(*observed.namespaces, ObservedNamespace("ztos-w-gone")))
    ops = plan_tenants(SPEC, observed)
    assert isinstance(ops[0], RemoveLeftovers)
    assert isinstance(ops[-1], EnsureWorkload) and ops[-1].workload.name == "ctr"


# --- marks, MTU -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("ztos tenant=blue", Mark("blue")),
        ("ztos tenant=blue workload=web", Mark("blue", "web")),
        ("ztos workload=web tenant=blue", Mark("blue", "web")),
        ("ztos", None),
        ("ztos workload=web", None),
        ("admin note", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_mark(alias: str | None, expected: Mark | None) -> None:
    assert parse_mark(alias) == expected
    if expected is not None:
        assert parse_mark(str(expected)) == expected


@pytest.mark.parametrize(
    ("wg_mtu", "ipv6", "expected"),
    [(1420, True, 1350), (1420, False, 1370), (8920, True, 8850), (1340, True, 1280), (1280, False, 1280)],
)
def test_tenant_mtu(wg_mtu: int, ipv6: bool, expected: int) -> None:
    assert tenant_mtu(wg_mtu, ipv6) == expected


def test_tenant_mtu_refuses_a_wireguard_mtu_below_ipv6_minimum() -> None:
    with pytest.raises(InvalidInput, match="below the IPv6 minimum"):
        tenant_mtu(1279, True)


# --- spec validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"vni": 0}, "vni 0 must be 1..16777215"),
        ({"vni": 2**24}, "vni"),
        ({"mtu": 1200}, "IPv6 needs 1280"),
        ({"gateway_mac": "03:00:5e:00:01:64"}, "not a unicast MAC"),
        ({"gateway_mac": "02:00:5e:00:01"}, "not a unicast MAC"),
        ({"gateway_mac": "02:aa:00:00:00:10"}, "MAC address .* used twice"),
        ({"local_vtep": "fd00::1/64"}, "not an IP address"),
        ({"flood": ("10.0.0.2",)}, "not of the family"),
        ({"flood": None}, "needs learning=False"),
        ({"gateway_addresses": ("10.20.0.1",)}, "needs a prefix length"),
        ({"vxlan": "a-very-long-name-x"}, "1-15 characters"),
        ({"name": "bad name"}, "tenant name"),
        ({"workloads": (WEB, WEB)}, "workload name 'web' is used twice"),
    ],
)
def test_bad_tenant_spec_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        replace(BLUE, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gateways": ("10.20.0.1", "10.20.0.2")}, "one gateway per address family"),
        ({"gateways": ("10.20.0.1/24",)}, "not an IP address"),
        ({"addresses": ("10.20.0.10",)}, "needs a prefix length"),
        ({"mac": "01:00:5e:00:00:01"}, "not a unicast MAC"),
        ({"netns": "has space"}, "namespace"),
    ],
)
def test_bad_workload_spec_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        replace(WEB, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tenants", "kwargs", "message"),
    [
        ((BLUE, replace(GREEN, vni=100)), {}, "tenant vni 100 is used twice"),
        ((BLUE, replace(GREEN, name="blue")), {}, "tenant name 'blue' is used twice"),
        ((BLUE, replace(GREEN, bridge="zt-b100")), {}, "device name 'zt-b100' is used twice"),
        ((BLUE, replace(GREEN, vrf_netns="ztos-t-blue")), {}, "namespace 'ztos-t-blue' is used twice"),
        ((replace(BLUE, bridge="br100"),), {}, "must start with 'zt-b'"),
        ((replace(BLUE, workloads=(replace(WEB, host_port="vethweb"),)),), {}, "must start with 'zt-w'"),
        ((replace(BLUE, vrf_netns="blue"),), {}, "must start with 'ztos-'"),
        ((replace(BLUE, workloads=(replace(CTR, netns="ztos-ctr"),)),), {}, "must not start with 'ztos-'"),
        ((), {"netns_prefix": ""}, "netns_prefix must not be empty"),
        ((), {"device_prefix": ""}, "device_prefix"),
    ],
)
def test_bad_tenants_spec_is_refused(
    tenants: tuple[TenantSpec, ...], kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        TenantsSpec(tenants, **kwargs)


def test_ownership_is_by_prefix_and_letter() -> None:
    spec = TenantsSpec((), device_prefix="zt-", netns_prefix="ztl-lab-h1-")
    names = ("zt-v100", "zt-b1", "zt-g1", "zt-wab", "zt-x", "ztos0", "zt-")
    assert [spec.device_owned(n) for n in names] == [True, True, True, True, False, False, False]
    assert spec.netns_owned("ztl-lab-h1-t-a") and not spec.netns_owned("ztl-lab-h10-t-a")
    assert not spec.netns_owned("ztl-lab-h1")


# --- executors -------------------------------------------------------------------------


def test_recording_executor_records_in_order() -> None:
    recorder = TenantRecordingExecutor()
    ops: list[TenantOperation] = [EnsureBridge(BLUE, new=True), AddFlood("blue", "zt-v100", "fd00::2")]
    recorder.apply(ops)
    recorder.apply([])
    assert recorder.operations == ops


def test_host_executor_stops_at_the_failing_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def refuse(name: str, mac: str, dst: str, netns: str | None) -> None:
        raise ToolError(f"fdb append {mac} dev {name} dst {dst}: Operation not supported (errno 95)")

    monkeypatch.setattr(links, "fdb_append", refuse)
    monkeypatch.setattr(links, "fdb_delete", lambda name, mac, dst, netns: calls.append(dst))
    ops: list[TenantOperation] = [
        RemoveFlood("blue", "zt-v100", "fd00::7"),
        AddFlood("blue", "zt-v100", "fd00::2"),
        RemoveFlood("blue", "zt-v100", "fd00::8"),
    ]
    with pytest.raises(TenantStepFailed) as failed:
        TenantHostExecutor("h1").apply(ops)
    assert calls == ["fd00::7"]
    assert failed.value.done == (ops[0],) and failed.value.operation == ops[1]
    assert "step 2 `+ flood zt-v100 -> fd00::2` failed: fdb append" in failed.value.detail
    assert "Operation not supported" in failed.value.detail
