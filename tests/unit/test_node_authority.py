"""Who may write what about a node: the host reports ``posture.*``, admins decide ``admin.*``.

A host's own reports can never overrule an admin's verdict, the posture
watchdog's mark is cleared only by reporting again, a node's attributes are
bounded, and a host's self-claimed endpoint never points peers at another host.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import addressing, netmap, pki
from ztos.controller import MAX_POSTURE_KEYS, Controller, NodeReport, initialise_network
from ztos.controller import policies as ops
from ztos.directory.sqlite import SqliteStore
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.server import EnrollRequest, TokenRequest
from ztos.errors import Forbidden, InvalidInput
from ztos.keys import generate_wg_keypair
from ztos.model import Network, Node


class Ticks:
    """An injected clock (seconds from a fixed start) for the posture watchdog."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.now)


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def controller(tmp_path: Path, ticks: Ticks) -> Iterator[Controller]:
    store = SqliteStore(str(tmp_path / "dir.db"))
    initialise_network(store, tmp_path / "pki", IdentityDir(tmp_path / "admin"), "test", 24 * 3600)
    ctl = Controller(
        store,
        pki.CertificateAuthority.load(tmp_path / "pki"),
        ["https://localhost:8443"],
        ticks,
        posture_timeout=30,
    )
    yield ctl
    store.close()


def enrol(controller: Controller, name: str) -> pki.Identity:
    token = controller.create_token("admin:admin", TokenRequest(node_name=name)).token
    csr = pki.make_csr(pki.generate_private_key(), name).public_bytes(Encoding.PEM).decode()
    request = EnrollRequest(
        token=token, node_name=name, csr_pem=csr, wg_public_key=generate_wg_keypair().public_key
    )
    return pki.identity_of(pki.cert_from_pem(controller.enroll(request, "x").certificate_pem))


@pytest.mark.parametrize(
    "report",
    [{"healthy": "true"}, {"posture.healthy": "true"}, {"healthy": None}, {"compliant": "true"}],
)
def test_host_reports_never_touch_the_admin_verdict(
    controller: Controller, report: dict[str, str | None]
) -> None:
    enrol(controller, "h1")
    verdict: dict[str, str | None] = {"admin.healthy": "false", "admin.compliant": "false"}
    controller.set_node_attributes("admin:admin", "h1", verdict)
    node = controller.report_posture("h1", report)
    assert node.attributes["admin.healthy"] == "false" and node.attributes["admin.compliant"] == "false"
    assert controller.get_node("h1").attributes["admin.healthy"] == "false"


@pytest.mark.parametrize("key", ["admin.healthy", "admin.x"])
@pytest.mark.parametrize("value", ["true", None])
def test_host_report_naming_an_admin_key_is_refused_and_changes_nothing(
    controller: Controller, key: str, value: str | None
) -> None:
    enrol(controller, "h1")
    controller.set_node_attributes("admin:admin", "h1", {"admin.healthy": "false", "admin.x": "1"})
    revision = controller.store.revision()
    with pytest.raises(Forbidden, match=key.replace(".", r"\.")) as refused:
        controller.report_posture("h1", {"os": "debian-12", key: value})
    assert refused.value.status == 403 and refused.value.code == "attribute_not_host_owned"
    assert controller.store.revision() == revision, "nothing of the report was written"
    assert controller.get_node("h1").attributes["admin.x"] == "1"


def test_admins_set_admin_keys_not_the_hosts_posture(controller: Controller) -> None:
    enrol(controller, "h1")
    with pytest.raises(InvalidInput, match=r"admin\.healthy") as refused:
        controller.set_node_attributes("admin:admin", "h1", {"posture.healthy": "false"})
    assert refused.value.status == 400 and refused.value.code == "host_reported_attribute"


def test_watchdog_mark_is_cleared_only_by_a_fresh_report(controller: Controller, ticks: Ticks) -> None:
    enrol(controller, "h1")
    controller.report_posture("h1", {"compliant": "true"})
    ticks.now += 30
    assert controller.expire_posture() == [], "never before the timeout"
    ticks.now += 15.1  # the timeout plus the stored time's allowed lag (half of it)
    assert controller.expire_posture() == ["h1"]
    marked = controller.get_node("h1").attributes
    assert (marked["posture.compliant"], marked["posture.stale"]) == ("false", "true")
    with pytest.raises(Forbidden, match="stale"):
        controller.report_posture("h1", {"stale": None})
    with pytest.raises(Forbidden, match="stale"):
        controller.report_posture("h1", {"posture.stale": "false"})
    assert controller.get_node("h1").attributes["posture.stale"] == "true", "a refused report is no report"
    assert controller.expire_posture() == [], "marked once"
    fresh = controller.report_posture("h1", {"compliant": "true"}).attributes
    assert "posture.stale" not in fresh and fresh["posture.compliant"] == "true"


ADMIN_POLICY = """
version: 1
rules:
  - name: h1-to-h2
    from: {nodes: [h1]}
    to: {nodes: [h2]}
    ports: [tcp/22]
    when:
      - {attr: device.admin.healthy, op: eq, value: "true"}
"""


def test_policy_condition_on_admin_verdict_cannot_be_satisfied_by_the_host(controller: Controller) -> None:
    enrol(controller, "h1"), enrol(controller, "h2")
    controller.set_node_attributes("admin:admin", "h1", {"admin.healthy": "false"})
    ops.apply(controller.store, "admin:admin", ops.PolicyText(text=ADMIN_POLICY))
    for report in ({"healthy": "true"}, {"posture.admin.healthy": "true"}, {"admin": "true"}):
        controller.report_posture("h1", report)
    with pytest.raises(Forbidden):
        controller.report_posture("h1", {"admin.healthy": "true"})
    probe = ops.PolicyTestRequest.model_validate({"from": "h1", "to": "h2", "port": "tcp/22"})
    decision = ops.test(controller.store, probe)
    assert not decision.allowed, decision.reason
    controller.set_node_attributes("admin:admin", "h1", {"admin.healthy": "true"})
    assert ops.test(controller.store, probe).allowed, "the admin's verdict is what the condition reads"


def test_attribute_count_is_bounded(controller: Controller) -> None:
    enrol(controller, "h1")
    controller.report_posture("h1", {f"k{i}": "v" for i in range(MAX_POSTURE_KEYS - 1)})
    with pytest.raises(InvalidInput, match="at most 64 posture") as refused:
        for round_ in range(15):
            controller.report_posture("h1", {f"r{round_}.{i}": "v" for i in range(64)})
    assert refused.value.code == "too_many_attributes"
    posture = [k for k in controller.get_node("h1").attributes if k.startswith("posture.")]
    assert len(posture) <= MAX_POSTURE_KEYS
    with pytest.raises(InvalidInput, match="bytes"):
        controller.report_posture("h1", {"k0": "x" * 5000})
    assert controller.report_posture("h1", {"k0": None}).attributes.get("posture.k0") is None, "removal works"


def test_forged_endpoint_is_never_handed_to_peers(controller: Controller) -> None:
    h1, h2, h3 = (enrol(controller, n) for n in ("h1", "h2", "h3"))
    controller.report(h1, NodeReport(endpoints=["[2001:db8::11]:51820"]), "2001:db8::11")
    controller.report(h2, NodeReport(endpoints=["[2001:db8::12]:51820"]), "2001:db8::12")
    forged = NodeReport(endpoints=["[2001:db8::11]:51820", "192.0.2.11:51820"])
    stored = controller.report(h3, forged, "2001:db8::13")
    assert stored.observed_endpoint == "[2001:db8::13]:51820"
    peers = {p.name: p.endpoint for p in controller.node_map(h2).peers}
    assert peers == {"h1": "[2001:db8::11]:51820", "h3": "[2001:db8::13]:51820"}
    # without an observed address (a report over loopback) the forged claim is still dropped
    controller.report(h3, forged, "127.0.0.1")
    assert controller.get_node("h3").observed_endpoint is None
    peers = {p.name: p.endpoint for p in controller.node_map(h2).peers}
    assert peers["h3"] == "192.0.2.11:51820", "only the claim nobody else owns is used"


def test_netmap_drops_a_claim_an_earlier_host_made() -> None:
    network = Network(
        ula_prefix=ipaddress.IPv6Network("fd12:3456:789a::/48"),
        ipv4_prefix=ipaddress.IPv4Network("10.42.0.0/16"),
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)

    def node(name: str, index: int, endpoints: list[str]) -> Node:
        key = generate_wg_keypair().public_key
        return Node(
            name=name,
            wg_public_key=key,
            overlay_ipv6=addressing.overlay_ipv6(network.ula_prefix, key),
            overlay_ipv4=ipaddress.IPv4Address(f"10.42.0.{10 + index}"),
            endpoints=endpoints,
            cert_serial="ab",
            enrolled_at=start + timedelta(minutes=index),
        )

    nodes = [node("a", 0, ["192.0.2.11:51820"]), node("b", 1, ["192.0.2.11:4000"]), node("c", 2, [])]
    peers = {p.name: p.endpoint for p in netmap.build(network, nodes, "c").peers}
    assert peers == {"a": "192.0.2.11:51820", "b": None}
