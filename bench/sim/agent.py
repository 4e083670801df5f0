"""A light simulated agent: the real agent's HTTP conversation, with no data plane.

Per pass, as ``ztos.agent.runner.Agent.step`` does: fetch the node map, put
the tenant status, the metrics (one zero counter per peer in the map) and the
posture report; then long-poll ``GET /api/v1/watch`` until something changes
or the reconcile interval passes. The underlay report (``PUT
/api/v1/nodes/self/report``) is sent once, as the agent sends it only when
its endpoints change. Each agent has its own client certificate and its own
keep-alive connection, so every request is real mTLS to the real controller.

Three deviations from the real agent, all to keep the simulation about
changes rather than start-up: an agent sends its first underlay and posture
reports before any agent watches (``prime``; a real agent's first posture
write wakes every watcher), its first watch starts at the head revision (a
real agent starts at 0 and replays the feed page by page, one full pass per
page of 1,000 changes), and each watch timeout is drawn from [0.5, 1] x the
interval, so periodic passes do not all fall on one tick.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import ssl
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench.sim.window import Window
from cryptography.hazmat.primitives.serialization import Encoding

from ztos import pki
from ztos.keys import generate_wg_keypair

CALL_TIMEOUT_S = 60.0  # an overloaded controller at 10,000 agents is slow, not dead
MAX_BACKOFF_S = 8.0
GONE = (401, 403, 404)  # revoked or deleted: the agent stops


@dataclass(frozen=True)
class Keys:
    """What a host generates before enrolling (made before any clock starts)."""

    name: str
    cell: str
    key_pem: bytes
    csr_pem: str
    wg_public_key: str


def make_keys(name: str, cell: str) -> Keys:
    key = pki.generate_private_key()
    csr = pki.make_csr(key, name).public_bytes(Encoding.PEM).decode()
    return Keys(name, cell, pki.key_to_pem(key), csr, generate_wg_keypair().public_key)


@dataclass
class Endpoint:
    calls: int = 0
    errors: int = 0  # failed requests: transport errors and 4xx/5xx other than ``refused``
    refused: int = 0  # 401/403/404: the agent was revoked or deleted, and stops
    bytes: int = 0
    seconds: list[float] = field(default_factory=list)


@dataclass
class Hub:
    """What all agents share: the window being measured and per-endpoint traffic."""

    url: str
    ca_file: Path
    interval: float
    window: Window | None = None
    traffic: dict[str, Endpoint] = field(default_factory=lambda: defaultdict(Endpoint))
    keep_latencies: bool = True

    def count(self, label: str, seconds: float, nbytes: int, status: int | None) -> None:
        entry = self.traffic[label]
        entry.calls += 1
        entry.refused += status in GONE
        entry.errors += status is None or (status >= 400 and status not in GONE)
        entry.bytes += nbytes
        if self.keep_latencies:
            entry.seconds.append(seconds)


class SimAgent:
    def __init__(self, keys: Keys, cert_pem: str, hub: Hub, work: Path, since: int) -> None:
        self.keys, self.hub, self.revision = keys, hub, since
        self.compliant = True
        self.stopped = False
        self.map_digest: bytes | None = None
        self.peers: list[str] = []
        self.woken_by: Window | None = None
        self.client = httpx.AsyncClient(
            base_url=hub.url, verify=self._context(cert_pem, work), timeout=CALL_TIMEOUT_S
        )
        self.rng = random.Random(keys.name)

    @property
    def name(self) -> str:
        return self.keys.name

    def _context(self, cert_pem: str, work: Path) -> ssl.SSLContext:
        pem = work / f"{self.name}.pem"
        pem.write_bytes(self.keys.key_pem + cert_pem.encode())
        pem.chmod(0o600)
        context = ssl.create_default_context(cafile=str(self.hub.ca_file))
        context.load_cert_chain(str(pem))
        return context

    async def close(self) -> None:
        self.stopped = True
        await self.client.aclose()

    # -- the conversation ---------------------------------------------------------------------

    async def call(self, label: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """One request; None when it failed (counted). A refusal of our identity stops us."""
        start = time.perf_counter()
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.HTTPError:
            self.hub.count(label, time.perf_counter() - start, 0, None)
            return None
        nbytes = response.num_bytes_downloaded
        self.hub.count(label, time.perf_counter() - start, nbytes, response.status_code)
        if self.woken_by is not None and label != "watch":
            self.woken_by.woken_bytes += nbytes
        if response.status_code in GONE:
            self.stopped = True
        return response if response.status_code < 400 else None

    async def report_underlay(self) -> None:
        body = {"endpoints": [], "listen_port": 51820, "underlay_mtu": 1500}
        await self.call("report", "PUT", "/api/v1/nodes/self/report", json=body)

    async def fetch_map(self) -> bool:
        response = await self.call("netmap", "GET", "/api/v1/netmap")
        if response is None:
            return False
        end = time.perf_counter()
        digest = hashlib.blake2b(response.content, digest_size=16).digest()
        changed = bool(response.content) and digest != self.map_digest
        if changed:
            self.map_digest = digest
            self.peers = [p["name"] for p in json.loads(response.content).get("peers", [])]
        window = self.hub.window
        if window is not None and end >= window.started:
            woken = self.woken_by is window
            window.fetched(self.name, end, changed, response.num_bytes_downloaded, woken)
        return True

    async def report_posture(self) -> httpx.Response | None:
        attributes = {"compliant": "true" if self.compliant else "false", "agent_version": "sim"}
        return await self.call(
            "posture", "PUT", "/api/v1/nodes/self/posture", json={"attributes": attributes}
        )

    async def one_pass(self) -> bool:
        if not await self.fetch_map():
            return False
        await self.call("status", "PUT", "/api/v1/nodes/self/status", json={"tenants": [], "bgp": []})
        metrics = {
            "interval_seconds": self.hub.interval,
            "reconcile_seconds": 0.001,
            "peers": [{"peer": p, "rx_bytes": 0, "tx_bytes": 0} for p in self.peers[:4096]],
        }
        await self.call("metrics", "PUT", "/api/v1/nodes/self/metrics", json=metrics)
        return await self.report_posture() is not None

    async def watch(self) -> bool:
        timeout = self.hub.interval * self.rng.uniform(0.5, 1.0)
        params = {"since": self.revision, "timeout": round(timeout, 3)}
        response = await self.call("watch", "GET", "/api/v1/watch", params=params, timeout=timeout + 60)
        if response is None:
            return False
        body = response.json()
        self.revision = int(body["revision"])
        window = self.hub.window
        if body["changes"] and window is not None and time.perf_counter() >= window.started:
            self.woken_by = window
            window.wake(self.name, response.num_bytes_downloaded)
        return True

    async def prime(self) -> None:
        """The reports a running agent has made long ago (underlay, posture), sent before
        any agent watches: N agents starting together would otherwise each wake all the
        others with their first posture write (O(N²) passes; see bench/README.md)."""
        await self.report_underlay()
        await self.report_posture()

    async def run(self) -> None:
        """Pass, watch, pass... until stopped or refused; back off on failures."""
        backoff = 0.5
        while not self.stopped:
            ok = await self.one_pass()
            if self.woken_by is not None:
                self.woken_by.pass_done()
                self.woken_by = None
            ok = ok and not self.stopped and await self.watch()
            if not ok and not self.stopped:
                await asyncio.sleep(backoff * self.rng.uniform(1, 1.5))
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            elif ok:
                backoff = 0.5
