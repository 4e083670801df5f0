"""The agent loop: enrol once, then watch and reconcile forever.

Each pass: renew the certificate when two thirds of its life are gone,
report the underlay endpoints when they changed, fetch the node map,
reconcile WireGuard, then long-poll the controller's change feed for at most
``reconcile_interval`` seconds. A change wakes the loop at once; the timeout
makes every interval a drift-repair pass. When the controller is away the
data plane is left exactly as it was and the loop retries with backoff.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ztos import dataplane, pki, renewal
from ztos.agent import areas, posture
from ztos.agent.desired import (
    HostAddress,
    endpoint_host,
    interface_spec,
    mesh_mtu,
    underlay_endpoints,
    underlay_mtu,
)
from ztos.agent.dns import DnsPublisher
from ztos.agent.enforce import Enforcer
from ztos.agent.local import verdicts, with_local_endpoints
from ztos.agent.metrics import MetricsReporter
from ztos.agent.status import tenant_status
from ztos.agent.tenants import frr_spec, tenants_spec
from ztos.client import ApiClient, controller_urls, enroll_host
from ztos.controller import NodeReport
from ztos.dataplane import links, mtu
from ztos.discovery.mdns import Announcement, LocalDiscovery
from ztos.enroll.identity_dir import IdentityDir
from ztos.enroll.profile import Profile, load_profile
from ztos.errors import InvalidInput, PkiError, Unreachable, ZtosError
from ztos.netmap import HeldMap, MapUpdate, NodeMap, applied
from ztos.routing.frr import ApplyResult, FrrInstance
from ztos.routing.spec import CONFIG_ROOT

log = logging.getLogger("ztos.agent")
T = TypeVar("T")

DEFAULT_PORT = 51820
MAX_BACKOFF = 8.0
PMTU_RETRY_AFTER = 60.0
LOCAL_ERRORS = (InvalidInput, PkiError)


@dataclass
class AgentConfig:
    state_dir: Path
    profile_path: Path | None = None
    ifname: str = "ztos0"
    reconcile_interval: float = 10.0
    listen_port: int = DEFAULT_PORT
    netns_prefix: str = "ztos-"  # tenant and workload namespaces start with it
    frr_instance: str = "ztos"  # unique per machine: several lab hosts share one kernel
    mdns: bool = True  # announce and listen on the underlay links (python-zeroconf)

    @property
    def frr_dir(self) -> Path:
        """FRR's files live outside the (0700) state dir: the frr user must read them."""
        return CONFIG_ROOT / self.frr_instance

    @property
    def identity(self) -> IdentityDir:
        return IdentityDir(self.state_dir)

    @property
    def netmap_cache(self) -> Path:
        return self.state_dir / "netmap.json"

    @property
    def saved_profile(self) -> Path:
        return self.state_dir / "profile.yaml"


@dataclass
class PathMtuCache:
    """Measured path MTUs by peer underlay address.

    Probing takes ~0.1 s a peer, so it never blocks a reconcile: unknown paths
    are probed in the background, in parallel, and the agent starts with the
    MTUs peers report; a later pass tightens the MTU if a path turns out
    narrower. Failures are retried after a while, not on every pass.
    """

    measured: dict[str, int] = field(default_factory=dict)
    failed_at: dict[str, float] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, "pmtu"))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, hosts: list[str]) -> dict[str, int]:
        with self.lock:
            for host in hosts:
                recently_failed = time.monotonic() - self.failed_at.get(host, -1e9) < PMTU_RETRY_AFTER
                if host in self.measured or host in self.pending or recently_failed:
                    continue
                self.pending.add(host)
                self.pool.submit(self._probe, host)
            return dict(self.measured)

    def _probe(self, host: str) -> None:
        try:
            result = mtu.path_mtu(host)
        except ZtosError as exc:
            log.info("path MTU to %s unknown for now: %s", host, exc.detail)
            with self.lock:
                self.failed_at[host] = time.monotonic()
                self.pending.discard(host)
            return
        with self.lock:
            self.measured[host] = result
            self.pending.discard(host)


class Stopping(BaseException):
    """Raised by ``Agent.request_stop`` into the watch request it interrupts (a
    BaseException, like KeyboardInterrupt, so no library handler swallows it)."""


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.pmtu = PathMtuCache()
        self.reported: NodeReport | None = None
        self.revision = 0
        self.held_map: NodeMap | None = None  # the last map fetched, for deltas against it
        self.held_revision: int | None = None
        self.stop = threading.Event()
        self._waiting = False  # in the watch long-poll, where a stop may cut the request short
        self.frr: FrrInstance | None = None
        self.dns = DnsPublisher(config.identity)
        self.enforcer = Enforcer(config.ifname, config.listen_port)
        self.backoff = areas.Backoff()  # per area: a failed one is retried on its own schedule
        self.mdns: LocalDiscovery | None = None
        self.metrics = MetricsReporter(config.ifname, config.reconcile_interval)

    # -- enrolment -----------------------------------------------------------

    def profile(self) -> Profile:
        """The profile given on the command line, else the copy kept after enrolment."""
        for path in (self.config.profile_path, self.config.saved_profile):
            if path is not None and path.exists():
                return load_profile(path)
        raise InvalidInput(f"no profile: pass --profile (nothing saved in {self.config.state_dir})")

    def enrol(self) -> Profile:
        profile = self.profile()
        addresses = host_addresses(self.config.ifname)
        endpoints = underlay_endpoints(addresses, self.config.listen_port, {self.config.ifname})
        outcome = enroll_host(
            profile,
            self.config.identity,
            endpoints,
            self.config.listen_port,
            underlay_mtu(addresses, endpoints),
        )
        if outcome.already_enrolled:
            log.info("already enrolled as %s; not enrolling again", outcome.identity_name)
        else:
            log.info("enrolled as %s", outcome.identity_name)
            self.config.saved_profile.write_text(profile.model_dump_json())
            self.config.saved_profile.chmod(0o600)
        return profile

    def client(self, profile: Profile) -> ApiClient:
        return ApiClient.for_identity(controller_urls(profile), self.config.identity, timeout=10)

    # -- one pass ----------------------------------------------------------------

    def step(self, client: ApiClient) -> list[str]:
        self.renew_if_due(client)
        self.report_if_changed(client)
        node_map = self.local_discovery(self.fetch_node_map(client))
        with self.metrics.reconcile.timing():
            applied = self.apply(node_map)
        self.report_status(client, node_map)
        self.metrics.send(client, node_map)
        self.dns.publish(node_map, self.config.identity.ensure_wg_public_key())
        self.report_posture(client)
        return applied

    def fetch_node_map(self, client: ApiClient) -> NodeMap:
        """The current map, sent as a delta against the one held when the controller can
        (a few peers instead of thousands); checked by digest, else fetched whole."""
        held = HeldMap.of(self.held_map, self.held_revision)
        update = self.map_update(client, held)
        node_map = applied(self.held_map, update)
        if node_map is None:
            log.info("node map %s did not lead to the controller's map; fetching it whole", update.kind)
            update = self.map_update(client, HeldMap())
            node_map = applied(None, update)
            if node_map is None:
                raise Unreachable(
                    "the controller's node map does not match its own digest", code="bad_node_map"
                )
        if update.kind != "unchanged":
            self.config.netmap_cache.write_text(node_map.model_dump_json(indent=2))
        self.held_map, self.held_revision = node_map, update.revision
        return node_map

    @staticmethod
    def map_update(client: ApiClient, held: HeldMap) -> MapUpdate:
        params = held.model_dump(exclude_none=True)
        return MapUpdate.model_validate(client.request("GET", "/api/v1/netmap/update", params=params))

    def apply(self, node_map: NodeMap) -> list[str]:
        """Reconcile every area (WireGuard, underlay table, tenants, gateways, policy, FRR),
        each on its own (``ztos.agent.areas``); returns what was changed."""
        outcomes = areas.reconcile(self.areas(node_map), self.backoff)
        applied = [op for outcome in outcomes for op in outcome.operations]
        for line in applied:
            log.info("applied: %s", line)
        return applied

    def plan(self, node_map: NodeMap) -> list[areas.Outcome]:
        """What ``apply`` would change, area by area, without changing anything."""
        return areas.plan(self.areas(node_map))

    def areas(self, node_map: NodeMap) -> list[areas.Area]:
        """The data plane's areas for ``node_map``, in the order a pass reconciles them."""
        mesh = self.desired(node_map)
        tenants = tenants_spec(node_map, mesh.mtu, self.config.netns_prefix)
        recorder = dataplane.TenantRecordingExecutor
        return [
            areas.Area(
                "wireguard",
                lambda: [str(op) for op in dataplane.reconcile(mesh)],
                lambda: [str(op) for op in dataplane.reconcile(mesh, executor=dataplane.RecordingExecutor())],
            ),
            areas.Area(
                "underlay",
                lambda: self.enforcer.apply_base(node_map, tenants),
                lambda: self.enforcer.plan_base(node_map, tenants),
            ),
            areas.Area(
                "tenants",
                lambda: [str(op) for op in dataplane.reconcile_tenants(tenants)],
                lambda: [str(op) for op in dataplane.reconcile_tenants(tenants, executor=recorder())],
            ),
            areas.Area(
                "gateways",
                lambda: self.enforcer.apply_gateways(tenants),
                lambda: self.enforcer.plan_gateways(tenants),
            ),
            areas.Area(
                "policy",
                lambda: self.enforcer.apply(node_map, tenants),
                lambda: self.enforcer.plan(node_map, tenants),
            ),
            areas.Area("routing", lambda: self.apply_routing(node_map), lambda: self.plan_routing(node_map)),
        ]

    def apply_routing(self, node_map: NodeMap) -> list[str]:
        spec = frr_spec(node_map, self.config.frr_instance, str(self.config.frr_dir))
        if spec is not None:
            self.frr = FrrInstance(spec)
            result = self.frr.apply()
            return [] if result is ApplyResult.UNCHANGED else [f"~ frr {spec.instance}: {result.value}"]
        if self.frr is not None and self.frr.stop():
            self.frr = None
            return [f"- frr {self.config.frr_instance} (BGP turned off)"]
        return []

    def plan_routing(self, node_map: NodeMap) -> list[str]:
        spec = frr_spec(node_map, self.config.frr_instance, str(self.config.frr_dir))
        if spec is not None:
            return FrrInstance(spec).plan()
        running = self.frr is not None and self.frr.running()
        return [f"- frr {self.config.frr_instance} (BGP turned off)"] if running else []

    def report_status(self, client: ApiClient, node_map: NodeMap) -> None:
        status = tenant_status(node_map, self.frr)
        client.request("PUT", "/api/v1/nodes/self/status", json=status.model_dump(mode="json"))

    def desired(self, node_map: NodeMap) -> dataplane.InterfaceSpec:
        hosts = [endpoint_host(p.endpoint) for p in node_map.peers if p.endpoint]
        path_mtus = self.pmtu.refresh(hosts)
        wg_mtu = mesh_mtu(node_map.underlay_mtu, node_map, path_mtus)
        return interface_spec(node_map, self.config.ifname, str(self.config.identity.wg_key), wg_mtu)

    def renew_if_due(self, client: ApiClient) -> None:
        if renewal.renew_if_due(client, self.config.identity):
            log.info("certificate renewed")

    def report_posture(self, client: ApiClient) -> None:
        """Every pass: the controller writes only what changed, and notices when reports stop."""
        report = posture.collect(posture.default_checks(self.config.state_dir))
        client.request("PUT", "/api/v1/nodes/self/posture", json={"attributes": report})

    def local_discovery(self, node_map: NodeMap) -> NodeMap:
        """Announce ourselves by mDNS and prefer trusted direct endpoints of peers on our links."""
        if not self.config.mdns:
            return node_map
        try:
            if self.mdns is None:
                self.mdns = LocalDiscovery()
            endpoints = self.reported.endpoints if self.reported and self.reported.endpoints else []
            cert = self.config.identity.certificate()
            self.mdns.announce(
                Announcement(
                    node_map.name,
                    node_map.listen_port,
                    self.config.identity.ensure_wg_public_key(),
                    pki.serial_hex(cert),
                    node_map.network,
                    tuple(endpoint_host(e) for e in endpoints),
                )
            )
        except ZtosError as exc:
            log.warning("mDNS: %s", exc.detail)
            return node_map
        judged = verdicts(self.mdns.sightings(), node_map)
        write_json(self.config.state_dir / "mdns.json", [v.as_dict() for v in judged])
        return with_local_endpoints(node_map, judged)

    def report_if_changed(self, client: ApiClient) -> None:
        addresses = host_addresses(self.config.ifname)
        endpoints = underlay_endpoints(addresses, self.config.listen_port, {self.config.ifname})
        report = NodeReport(
            endpoints=endpoints,
            listen_port=self.config.listen_port,
            underlay_mtu=underlay_mtu(addresses, endpoints),
        )
        if report != self.reported:
            client.request("PUT", "/api/v1/nodes/self/report", json=report.model_dump(mode="json"))
            self.reported = report

    def wait_for_change(self, client: ApiClient) -> None:
        timeout = self.config.reconcile_interval
        params = {"since": self.revision, "timeout": timeout}
        try:
            self._waiting = True
            if self.stop.is_set():
                return
            result = client.request("GET", "/api/v1/watch", params=params, timeout=timeout + 10)
            self._waiting = False
        except Stopping:
            return
        finally:
            self._waiting = False
        self.revision = int(result["revision"])

    def request_stop(self) -> None:
        """SIGTERM/SIGINT handler (main thread): stop after the pass in progress, or at
        once while waiting for changes, which can take the whole reconcile interval.
        The data plane is left as it is, so a restarted agent takes over without a gap."""
        self.stop.set()
        if self._waiting:
            self._waiting = False  # a second signal must not interrupt the unwinding
            raise Stopping

    # -- forever -------------------------------------------------------------------

    def run(self) -> None:
        # Enrolment retries only what time can fix (controller away); a refused
        # token or a bad profile ends the agent with its reason.
        profile = self.retrying(self.enrol, lambda exc: exc.retry)
        if profile is None:
            return
        client = self.retrying(lambda: self.client(profile), lambda exc: exc.retry)
        if client is None:
            return
        # Once enrolled, keep trying through everything but local misconfiguration:
        # a revoked or unknown host may be re-admitted by an admin.
        while not self.stop.is_set():
            self.retrying(lambda: self.pass_and_wait(client), lambda exc: not isinstance(exc, LOCAL_ERRORS))

    def pass_and_wait(self, client: ApiClient) -> None:
        self.step(client)
        self.wait_for_change(client)

    def retrying(self, action: Callable[[], T], retryable: Callable[[ZtosError], bool]) -> T | None:
        """Run ``action`` until it succeeds or the agent stops, backing off on retryable errors."""
        backoff = 0.5
        while not self.stop.is_set():
            try:
                return action()
            except ZtosError as exc:
                if not retryable(exc):
                    raise
                delay = backoff * (1 + random.random() / 2)
                log.warning("%s [%s]; data plane kept as is, retrying in %.1fs", exc.detail, exc.code, delay)
                self.stop.wait(delay)
                backoff = min(backoff * 2, MAX_BACKOFF)
        return None


def host_addresses(exclude_ifname: str) -> list[HostAddress]:
    return [
        HostAddress(ifname=a.ifname, address=a.address, mtu=a.mtu)
        for a in links.all_addresses()
        if a.ifname != exclude_ifname
    ]


def write_json(path: Path, data: object) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def cached_node_map(config: AgentConfig) -> NodeMap | None:
    if not config.netmap_cache.exists():
        return None
    return NodeMap.model_validate(json.loads(config.netmap_cache.read_text()))
