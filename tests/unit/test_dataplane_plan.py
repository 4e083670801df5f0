"""Table tests of the pure parts of the data plane: planner, MTU math, parsers, specs."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import pytest

from ztos.dataplane import keys, links
from ztos.dataplane.mtu import narrow, next_probe, overlay_mtu, wireguard_mtu
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
from ztos.dataplane.reconcile import HostExecutor, RecordingExecutor, StepFailed
from ztos.dataplane.state import (
    Backend,
    InterfaceSpec,
    ObservedInterface,
    ObservedPeer,
    PeerSpec,
    normalize_endpoint,
)
from ztos.dataplane.wireguard import (
    WireGuardGo,
    parse_uapi_get,
    parse_uapi_pairs,
    parse_wg_dump,
    uapi_peer_lines,
    wg_peer_args,
)
from ztos.errors import InvalidInput, ToolError


def key(n: int) -> str:
    return base64.b64encode(bytes([n]) * 32).decode()


OWN = key(1)
P2, P3, P4 = key(2), key(3), key(4)
NAME = "ztos0"

PEER2 = PeerSpec(P2, "[2001:db8::2]:51820", ("fd00::2/128", "10.1.0.2/32"))
PEER3 = PeerSpec(P3, "[2001:db8::3]:51820", ("fd00::3/128", "10.1.0.3/32"), 25)

DESIRED = InterfaceSpec(
    name=NAME,
    private_key_path="/etc/ztos/wg.key",
    listen_port=51820,
    mtu=1420,
    addresses=("fd00::1/128", "10.1.0.1/32"),
    peers=(PEER2, PEER3),
    routes=("fd00::/64", "10.1.0.0/16"),
)


def observed_peer(spec: PeerSpec, **changes: object) -> ObservedPeer:
    peer = ObservedPeer(
        public_key=spec.public_key,
        endpoint=spec.endpoint,
        allowed_ips=tuple(sorted(spec.allowed_ips)),
        persistent_keepalive=spec.persistent_keepalive,
        last_handshake=1_700_000_000.5,
        rx_bytes=100,
        tx_bytes=200,
    )
    return replace(peer, **changes)  # type: ignore[arg-type]


CONVERGED = ObservedInterface(
    name=NAME,
    exists=True,
    backend=Backend.USERSPACE,
    controllable=True,
    up=True,
    mtu=1420,
    addresses=("10.1.0.1/32", "fd00::1/128"),
    routes=("10.1.0.0/16", "fd00::/64"),
    public_key=OWN,
    listen_port=51820,
    peers=(observed_peer(PEER2), observed_peer(PEER3)),
)


def lines(observed: ObservedInterface, desired: InterfaceSpec = DESIRED) -> list[str]:
    return [str(op) for op in plan(desired, observed, public_key=OWN)]


# --- planner -----------------------------------------------------------------


def test_converged_host_gives_empty_plan() -> None:
    assert plan(DESIRED, CONVERGED, public_key=OWN) == []


def test_equivalent_spellings_are_converged() -> None:
    desired = replace(
        DESIRED,
        addresses=("FD00:0::1/128", "10.1.0.1/32"),
        routes=("fd00:0:0:0::1/64", "10.1.2.3/16"),
        peers=(replace(PEER2, endpoint="[2001:DB8:0::2]:51820"), PEER3),
    )
    assert plan(desired, CONVERGED, public_key=OWN) == []


def test_fresh_host_creates_everything_in_order() -> None:
    absent = ObservedInterface.absent(NAME, Backend.USERSPACE)
    assert lines(absent) == [
        "+ interface ztos0 (wireguard-go)",
        "~ private key /etc/ztos/wg.key (public AQEBAQEB…)",
        "~ listen-port - -> 51820",
        "~ mtu - -> 1420",
        "+ address 10.1.0.1/32",
        "+ address fd00::1/128",
        "~ link ztos0 up",
        "+ peer AgICAgIC… allowed 10.1.0.2/32,fd00::2/128 endpoint [2001:db8::2]:51820",
        "+ peer AwMDAwMD… allowed 10.1.0.3/32,fd00::3/128 endpoint [2001:db8::3]:51820 keepalive 25",
        "+ route 10.1.0.0/16 dev ztos0",
        "+ route fd00::/64 dev ztos0",
    ]


def test_kernel_backend_is_named_in_create() -> None:
    ops = plan(DESIRED, ObservedInterface.absent(NAME, Backend.KERNEL), public_key=OWN)
    assert ops[0] == CreateInterface(NAME, Backend.KERNEL)


def test_link_without_a_live_wireguard_is_recreated() -> None:
    stale = ObservedInterface(name=NAME, exists=True, backend=Backend.USERSPACE, mtu=1420)
    ops = plan(DESIRED, stale, public_key=OWN)
    assert ops[:2] == [
        DeleteInterface(NAME, "no WireGuard process answers for it"),
        CreateInterface(NAME, Backend.USERSPACE),
    ]
    assert SetMtu(NAME, None, 1420) in ops


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        pytest.param(
            replace(CONVERGED, peers=(observed_peer(PEER3),)),
            [AddPeer(NAME, PEER2)],
            id="peer-deleted-by-hand",
        ),
        pytest.param(
            replace(CONVERGED, peers=(*CONVERGED.peers, observed_peer(PeerSpec(P4, None, ())))),
            [RemovePeer(NAME, P4)],
            id="peer-that-left",
        ),
        pytest.param(
            replace(CONVERGED, peers=(observed_peer(PEER2, endpoint="[2001:db8::99]:1"), CONVERGED.peers[1])),
            [UpdatePeer(NAME, PEER2, ("endpoint",))],
            id="endpoint-changed",
        ),
        pytest.param(
            replace(
                CONVERGED, peers=(observed_peer(PEER2, allowed_ips=("fd00::2/128",)), CONVERGED.peers[1])
            ),
            [UpdatePeer(NAME, PEER2, ("allowed-ips",))],
            id="allowed-ips-changed",
        ),
        pytest.param(
            replace(CONVERGED, peers=(CONVERGED.peers[0], observed_peer(PEER3, persistent_keepalive=0))),
            [UpdatePeer(NAME, PEER3, ("keepalive",))],
            id="keepalive-changed",
        ),
        pytest.param(replace(CONVERGED, mtu=1500), [SetMtu(NAME, 1500, 1420)], id="mtu"),
        pytest.param(replace(CONVERGED, up=False), [SetUp(NAME)], id="link-down"),
        pytest.param(replace(CONVERGED, listen_port=40000), [SetListenPort(NAME, 40000, 51820)], id="port"),
        pytest.param(
            replace(CONVERGED, public_key=P4),
            [SetPrivateKey(NAME, "/etc/ztos/wg.key", OWN)],
            id="wrong-private-key",
        ),
        pytest.param(
            replace(CONVERGED, addresses=("10.1.0.1/32", "fd00::1/128", "fd00::99/128")),
            [RemoveAddress(NAME, "fd00::99/128")],
            id="extra-address",
        ),
        pytest.param(
            replace(CONVERGED, routes=("10.1.0.0/16",)),
            [AddRoute(NAME, "fd00::/64")],
            id="route-deleted-by-hand",
        ),
        pytest.param(
            replace(CONVERGED, routes=(*CONVERGED.routes, "192.0.2.0/24")),
            [RemoveRoute(NAME, "192.0.2.0/24")],
            id="stale-ztos-route",
        ),
    ],
)
def test_drift_is_repaired(observed: ObservedInterface, expected: list[object]) -> None:
    assert plan(DESIRED, observed, public_key=OWN) == expected


def test_learned_endpoint_is_kept_when_none_is_desired() -> None:
    roaming = replace(PEER2, endpoint=None)
    desired = replace(DESIRED, peers=(roaming, PEER3))
    assert plan(desired, CONVERGED, public_key=OWN) == []


def test_unknown_public_key_only_sets_a_missing_key() -> None:
    assert plan(DESIRED, CONVERGED) == []
    ops = plan(DESIRED, replace(CONVERGED, public_key=None))
    assert ops == [SetPrivateKey(NAME, "/etc/ztos/wg.key", None)]
    assert str(ops[0]) == "~ private key /etc/ztos/wg.key (public ?)"


def test_make_before_break_order() -> None:
    desired = replace(
        DESIRED,
        addresses=("fd00::1/128", "10.1.0.9/32"),
        peers=(PEER2, PeerSpec(P4, None, ("fd00::3/128", "10.1.0.3/32"))),
    )
    assert lines(CONVERGED, desired) == [
        "+ address 10.1.0.9/32",
        "- address 10.1.0.1/32",
        "+ peer BAQEBAQE… allowed 10.1.0.3/32,fd00::3/128",
        "- peer AwMDAwMD…",
    ]


def test_plan_is_stable_whatever_the_input_order() -> None:
    shuffled = replace(
        DESIRED, peers=(PEER3, PEER2), addresses=DESIRED.addresses[::-1], routes=DESIRED.routes[::-1]
    )
    absent = ObservedInterface.absent(NAME, Backend.USERSPACE)
    assert plan(shuffled, absent, public_key=OWN) == plan(DESIRED, absent, public_key=OWN)


def test_operation_strings() -> None:
    assert str(UpdatePeer(NAME, PEER2, ("endpoint",))) == (
        "~ peer AgICAgIC… allowed 10.1.0.2/32,fd00::2/128 endpoint [2001:db8::2]:51820 (changed: endpoint)"
    )
    assert str(RemovePeer(NAME, P2)) == "- peer AgICAgIC…"
    assert str(DeleteInterface(NAME, "why")) == "- interface ztos0 (why)"
    assert str(RemoveRoute(NAME, "fd00::/64")) == "- route fd00::/64 dev ztos0"
    assert str(AddAddress(NAME, "fd00::1/128")) == "+ address fd00::1/128"


def test_recording_executor_records_in_order() -> None:
    executor = RecordingExecutor()
    ops = plan(DESIRED, replace(CONVERGED, mtu=1280, up=False), public_key=OWN)
    executor.apply(ops)
    assert executor.operations == [SetMtu(NAME, 1280, 1420), SetUp(NAME)]


def test_host_executor_stops_at_the_failing_step(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        raise ToolError("set link ztos0: Invalid argument")

    monkeypatch.setattr(links, "add_address", lambda name, cidr, netns: calls.append(cidr))
    monkeypatch.setattr(links, "set_link", refuse)
    monkeypatch.setattr(links, "add_route", lambda name, cidr, netns: calls.append(cidr))
    ops: list[Operation] = [
        AddAddress(NAME, "fd00::1/128"),
        SetMtu(NAME, 1420, 99999),
        AddRoute(NAME, "fd00::/64"),
    ]
    with pytest.raises(StepFailed) as failed:
        HostExecutor(launcher=WireGuardGo()).apply(ops)
    assert calls == ["fd00::1/128"]
    assert failed.value.operation == ops[1]
    assert failed.value.done == (ops[0],)
    assert isinstance(failed.value.__cause__, ToolError)


def test_step_failed_names_the_step() -> None:
    error = StepFailed(SetUp(NAME), [SetMtu(NAME, 1, 2)], ToolError("No such device"))
    assert "step 2 `~ link ztos0 up` failed: No such device" in error.detail
    assert error.retry is True


# --- specs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "much-too-long-ifname"}, "1-15 characters"),
        ({"listen_port": 0}, "listen_port"),
        ({"mtu": 1000}, "1280"),
        ({"addresses": ("fd00::1/129",)}, "not ADDRESS/PREFIXLEN"),
        ({"routes": ("nonsense",)}, "not a CIDR"),
        ({"peers": (PEER2, PEER2)}, "listed twice"),
        ({"peers": (PEER2, PeerSpec(P3, None, ("fd00::2/128",)))}, "given to both"),
    ],
)
def test_bad_interface_spec_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        replace(DESIRED, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"public_key": "short"}, "base64"),
        ({"public_key": base64.b64encode(b"x" * 31).decode()}, "32 bytes"),
        ({"endpoint": "2001:db8::2:51820"}, r"\[ADDRESS\]:PORT"),
        ({"endpoint": "[2001:db8::2]:0"}, "port"),
        ({"endpoint": "host.example:51820"}, "ADDRESS:PORT"),
        ({"allowed_ips": ("10.0.0.300/32",)}, "not a CIDR"),
        ({"persistent_keepalive": -1}, "persistent_keepalive"),
    ],
)
def test_bad_peer_spec_is_refused(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"public_key": P2, "endpoint": None, "allowed_ips": ()}
    with pytest.raises(InvalidInput, match=message):
        PeerSpec(**{**fields, **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("[2001:DB8:0::2]:51820", "[2001:db8::2]:51820"),
        ("192.0.2.1:0051820", "192.0.2.1:51820"),
    ],
)
def test_endpoint_normalisation(given: str, canonical: str) -> None:
    assert normalize_endpoint(given) == canonical


# --- MTU ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("underlay", "ipv6", "expected"),
    [
        (1500, True, 1420),
        (1500, False, 1440),
        (9000, True, 8920),
        (9000, False, 8940),
        (1360, True, 1280),
        (1300, True, 1280),
        (1280, False, 1280),
        (65535, True, 65455),
    ],
)
def test_overlay_mtu(underlay: int, ipv6: bool, expected: int) -> None:
    assert overlay_mtu(underlay, ipv6) == expected


@pytest.mark.parametrize(("underlay", "ipv6"), [(1279, True), (575, False)])
def test_overlay_mtu_refuses_impossible_underlays(underlay: int, ipv6: bool) -> None:
    with pytest.raises(InvalidInput, match="below"):
        overlay_mtu(underlay, ipv6)


@pytest.mark.parametrize(
    ("local", "paths", "expected"),
    [(9000, [9000], 8920), (9000, [1500, 9000], 1420), (1500, [], 1420), (1400, [9000], 1320)],
)
def test_wireguard_mtu_takes_the_narrowest(local: int, paths: list[int], expected: int) -> None:
    assert wireguard_mtu(local, paths, ipv6_underlay=True) == expected


@pytest.mark.parametrize(
    ("window", "size", "ok", "hint", "expected"),
    [
        ((1280, 9001), 9000, True, None, (9000, 9001)),
        ((1280, 9001), 9000, False, 1500, (1280, 1501)),
        ((1280, 9001), 9000, False, None, (1280, 9000)),
        ((1280, 9001), 9000, False, 9000, (1280, 9000)),
        ((1500, 9001), 5000, False, 1500, (1500, 1501)),
        ((1400, 9001), 5000, False, 1300, (1400, 5000)),
        ((1280, 1501), 1500, True, None, (1500, 1501)),
    ],
)
def test_narrow_window(
    window: tuple[int, int], size: int, ok: bool, hint: int | None, expected: tuple[int, int]
) -> None:
    assert narrow(*window, size, ok, hint) == expected


@pytest.mark.parametrize(
    ("good", "bad", "top_first", "expected"),
    [(1280, 1501, True, 1500), (1280, 9000, False, 5140), (1499, 1501, False, 1500)],
)
def test_next_probe(good: int, bad: int, top_first: bool, expected: int) -> None:
    assert next_probe(good, bad, top_first) == expected


# --- parsers -----------------------------------------------------------------


def test_parse_uapi_get_derives_public_key_and_drops_private() -> None:
    private, public = keys.generate_keypair()
    reply = (
        f"private_key={keys.b64_to_hex(private)}\nlisten_port=51820\n"
        f"public_key={keys.b64_to_hex(P2)}\nendpoint=[2001:db8::2]:51820\n"
        "last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=500000000\n"
        "tx_bytes=10\nrx_bytes=20\npersistent_keepalive_interval=25\n"
        "allowed_ip=fd00::2/128\nallowed_ip=10.1.0.2/32\nprotocol_version=1\n"
        f"public_key={keys.b64_to_hex(P3)}\nlast_handshake_time_sec=0\n"
        "last_handshake_time_nsec=0\nerrno=0\n\n"
    )
    state = parse_uapi_get(parse_uapi_pairs(reply))
    assert state.public_key == public
    assert state.listen_port == 51820
    assert state.peers == (
        ObservedPeer(P2, "[2001:db8::2]:51820", ("10.1.0.2/32", "fd00::2/128"), 25, 1700000000.5, 20, 10),
        ObservedPeer(P3, None, (), 0, None, 0, 0),
    )
    assert private not in repr(state)


def test_parse_uapi_get_without_private_key() -> None:
    state = parse_uapi_get(parse_uapi_pairs(f"private_key={'0' * 64}\nlisten_port=0\nerrno=0\n\n"))
    assert state.public_key is None


def test_parse_wg_dump() -> None:
    dump = (
        f"{key(9)}\t{OWN}\t51820\toff\n"
        f"{P2}\t(none)\t[2001:db8::2]:51820\tfd00::2/128,10.1.0.2/32\t1700000000\t20\t10\t25\n"
        f"{P3}\t(none)\t(none)\t(none)\t0\t0\t0\toff\n"
    )
    state = parse_wg_dump(dump)
    assert state.public_key == OWN
    assert state.listen_port == 51820
    assert state.peers == (
        ObservedPeer(P2, "[2001:db8::2]:51820", ("10.1.0.2/32", "fd00::2/128"), 25, 1700000000.0, 20, 10),
        ObservedPeer(P3, None, (), 0, None, 0, 0),
    )


def test_parse_wg_dump_rejects_garbage() -> None:
    with pytest.raises(ToolError, match="unexpected"):
        parse_wg_dump("nonsense")


def test_peer_set_requests() -> None:
    assert uapi_peer_lines(PEER3) == [
        f"public_key={keys.b64_to_hex(P3)}",
        "endpoint=[2001:db8::3]:51820",
        "persistent_keepalive_interval=25",
        "replace_allowed_ips=true",
        "allowed_ip=fd00::3/128",
        "allowed_ip=10.1.0.3/32",
    ]
    roaming = PeerSpec(P2, None, ())
    assert wg_peer_args(roaming) == ["peer", P2, "persistent-keepalive", "off", "allowed-ips", ""]


def test_keys_round_trip(tmp_path: Path) -> None:
    private, public = keys.generate_keypair()
    assert keys.public_key_of(private) == public
    assert keys.hex_to_b64(keys.b64_to_hex(public)) == public
    path = tmp_path / "wg.key"
    keys.write_private_key(path, private)
    assert keys.read_private_key(path) == private
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        keys.read_private_key(path)
