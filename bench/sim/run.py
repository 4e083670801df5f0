"""The simulation, phase by phase: baseline, enrolment, start, idle, changes, map builds."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench.benchlib import BenchError
from bench.sim import network
from bench.sim.agent import Hub, Keys, SimAgent, make_keys
from bench.sim.control import Controller, usage
from bench.sim.stats import Samples
from bench.sim.window import Window

from ztos.client import tls_context
from ztos.enroll.identity_dir import IdentityDir

POLL_S = 0.02
BASELINE_HOSTS = 2  # one cell of two: the single affected agent of every baseline change
CHANGE_KINDS = ("join", "leave", "revoke", "quarantine", "release", "flap_down", "flap_up", "policy")


@dataclass
class Admin:
    """The admin's and the enrollees' keep-alive connections (``lanes`` of each)."""

    admin: list[httpx.AsyncClient]
    anon: list[httpx.AsyncClient]

    @classmethod
    def open(cls, controller: Controller, lanes: int) -> Admin:
        identity = IdentityDir(controller.home)
        admin_ctx, anon_ctx = tls_context(identity.ca_cert, identity), tls_context(identity.ca_cert, None)

        def client(ctx: Any) -> httpx.AsyncClient:
            return httpx.AsyncClient(base_url=controller.url, verify=ctx, timeout=120)

        return cls([client(admin_ctx) for _ in range(lanes)], [client(anon_ctx) for _ in range(lanes)])

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.admin + self.anon))


def checked(response: httpx.Response, what: str) -> Any:
    if response.status_code >= 400:
        raise BenchError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return response.json() if response.content else None


@dataclass
class Sim:
    args: argparse.Namespace
    controller: Controller
    admin: Admin
    hub: Hub
    work: Path
    layout: network.Layout
    agents: dict[str, SimAgent] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    keys: dict[str, Keys] = field(default_factory=dict)
    certs: dict[str, str] = field(default_factory=dict)
    head: int = 0
    policy_edits: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(11))

    # -- enrolment ----------------------------------------------------------------------------

    async def enrol(self, keys: Keys, lane: int) -> tuple[float, float, str]:
        """Token (admin) then enrolment (anonymous): (token s, enrol s, certificate)."""
        t0 = time.perf_counter()
        body = {
            "node_name": keys.name,
            "ttl_seconds": 3600,
            "attributes": network.token_attributes(keys.cell),
        }
        created = checked(await self.admin.admin[lane].post("/api/v1/tokens", json=body), "token")
        t1 = time.perf_counter()
        request = {
            "token": created["token"],
            "node_name": keys.name,
            "csr_pem": keys.csr_pem,
            "wg_public_key": keys.wg_public_key,
            "endpoints": [],
        }
        enrolled = checked(await self.admin.anon[lane].post("/api/v1/enroll", json=request), "enrol")
        return t1 - t0, time.perf_counter() - t1, str(enrolled["certificate_pem"])

    async def enrol_many(self, hosts: list[Keys]) -> dict[str, Any]:
        """Enrol ``hosts`` over the lanes; latencies in completion order."""
        token_s, enrol_s, certs = Samples(), Samples(), {}
        queue = list(reversed(hosts))
        cpu0, t0 = usage(self.controller.pid).cpu_s, time.perf_counter()

        async def lane(index: int) -> None:
            while queue:
                keys = queue.pop()
                tok, enr, cert = await self.enrol(keys, index)
                token_s.add(tok)
                enrol_s.add(enr)
                certs[keys.name] = cert

        await asyncio.gather(*(lane(i) for i in range(len(self.admin.admin))))
        wall = time.perf_counter() - t0
        self.certs.update(certs)
        tenth = min(100, max(1, len(enrol_s.values_s) // 5))  # 100 once N >= 500
        first, last = Samples(enrol_s.values_s[:tenth]), Samples(enrol_s.values_s[-tenth:])
        return {
            "hosts": len(hosts),
            "wall_s": round(wall, 2),
            "hosts_per_s": round(len(hosts) / wall, 2),
            "controller_cpu_s": round(usage(self.controller.pid).cpu_s - cpu0, 2),
            "enroll_request": enrol_s.summary(),
            "token_request": token_s.summary(),
            "first_n": tenth,
            "enroll_first_n": first.summary(),
            "enroll_last_n": last.summary(),
        }

    # -- agents -------------------------------------------------------------------------------

    async def read_head(self) -> int:
        """The change feed's head revision, paged as an admin (no node watch replays it)."""
        while True:
            params = {"since": self.head, "timeout": 0}
            page = checked(await self.admin.admin[0].get("/api/v1/watch", params=params), "watch head")
            if int(page["revision"]) == self.head:
                return self.head
            self.head = int(page["revision"])

    async def start_agents(self, names: list[str]) -> None:
        for name in names:
            self.agents[name] = SimAgent(self.keys[name], self.certs[name], self.hub, self.work, 0)
        batch = 100  # TLS handshakes a batch at a time, so the listen backlog never overflows
        for start in range(0, len(names), batch):
            chunk = [self.agents[n] for n in names[start : start + batch]]
            await asyncio.gather(*(a.prime() for a in chunk))
        since = await self.read_head()  # after the priming writes: they wake no one
        for name in names:
            self.agents[name].revision = since
            self.tasks[name] = asyncio.create_task(self.agents[name].run())

    async def stop_agent(self, name: str) -> None:
        agent = self.agents.pop(name, None)
        task = self.tasks.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if agent is not None:
            await agent.close()

    async def stop_all(self) -> None:
        await asyncio.gather(*(self.stop_agent(name) for name in list(self.agents)))

    def mates(self, name: str) -> frozenset[str]:
        cell = self.keys[name].cell
        return frozenset(n for n, a in self.agents.items() if a.keys.cell == cell and n != name)

    async def quiet(self, timeout: float) -> dict[str, Any]:
        """Until the network is quiet (``Window.settled`` with nothing expected)."""
        window = Window("quiet", time.perf_counter(), frozenset())
        self.hub.window = window
        cpu0 = usage(self.controller.pid).cpu_s
        timed_out = not await self.until(self.settled(window), timeout)
        self.hub.window = None
        took = time.perf_counter() - window.started
        cpu = usage(self.controller.pid).cpu_s - cpu0
        return {"seconds": round(took, 2), "woken": len(window.woken), "timed_out": timed_out, "cpu_s": cpu}

    def settled(self, window: Window) -> Callable[[], bool]:
        return lambda: window.settled(time.perf_counter(), self.args.grace)

    async def until(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if done():
                return True
            await asyncio.sleep(POLL_S)
        return done()

    # -- changes ------------------------------------------------------------------------------

    async def measure(
        self, kind: str, expected: frozenset[str], write: Callable[[], Awaitable[None]]
    ) -> dict[str, Any]:
        """One write and its settling (``window``); the result as ``Window.result``."""
        await self.quiet(self.args.settle)
        cpu0 = usage(self.controller.pid).cpu_s
        window = Window(kind, time.perf_counter(), expected)
        self.hub.window = window
        await write()
        window.acked = time.perf_counter()
        settled = await self.until(self.settled(window), self.args.settle)
        self.hub.window = None
        result = window.result(not settled, usage(self.controller.pid).cpu_s - cpu0)
        if kind != "cleanup":
            print(
                f"  {kind}: last agent after {result['to_last_agent_ms']} ms, {result['affected']} "
                f"affected, {result['woken']} woken{', TIMED OUT' if not settled else ''}",
                flush=True,
            )
        return result

    async def join(self, name: str, cell: str) -> dict[str, Any]:
        keys = self.keys[name] = await asyncio.to_thread(make_keys, name, cell)
        body = {"node_name": name, "ttl_seconds": 3600, "attributes": network.token_attributes(cell)}
        token = checked(await self.admin.admin[0].post("/api/v1/tokens", json=body), "token")["token"]
        expected = frozenset(n for n, a in self.agents.items() if a.keys.cell == cell) | {name}

        async def write() -> None:
            request = {
                "token": token,
                "node_name": name,
                "csr_pem": keys.csr_pem,
                "wg_public_key": keys.wg_public_key,
                "endpoints": [],
            }
            enrolled = checked(await self.admin.anon[0].post("/api/v1/enroll", json=request), "enrol")
            self.certs[name] = enrolled["certificate_pem"]
            await self.start_agents([name])

        return await self.measure("join", expected, write)

    async def admin_write(
        self, kind: str, expected: frozenset[str], method: str, path: str, body: Any
    ) -> dict[str, Any]:
        async def write() -> None:
            checked(await self.admin.admin[0].request(method, path, json=body), kind)

        return await self.measure(kind, expected, write)

    async def flap(self, name: str, compliant: bool) -> dict[str, Any]:
        agent = self.agents[name]

        async def write() -> None:
            agent.compliant = compliant
            if await agent.report_posture() is None:
                raise BenchError(f"posture report of {name} failed")

        return await self.measure("flap_up" if compliant else "flap_down", self.mates(name), write)

    async def policy(self) -> dict[str, Any]:
        self.policy_edits += 1
        text = network.policy_text(self.layout.cells, self.policy_edits)
        body = {"text": text, "source": "zsim", "comment": f"edit {self.policy_edits}"}
        return await self.admin_write("policy", frozenset(self.agents), "POST", "/api/v1/policies", body)

    async def apply_policy(self) -> None:
        text = network.policy_text(self.layout.cells, 0)
        checked(
            await self.admin.admin[0].post("/api/v1/policies", json={"text": text, "source": "zsim"}),
            "policy",
        )

    async def one_round(self, number: int, pool: list[str]) -> list[dict[str, Any]]:
        """join+leave, join+revoke (then delete, unmeasured), quarantine+release, flap, policy."""
        kinds = set(self.args.kinds)
        cell = self.keys[self.rng.choice(pool)].cell
        out: list[dict[str, Any]] = []
        leaver, revoked = f"zj{number}a", f"zj{number}b"
        if {"join", "leave"} & kinds:
            out.append(await self.join(leaver, cell))
            path = f"/api/v1/nodes/{leaver}"
            out.append(await self.admin_write("leave", self.mates(leaver), "DELETE", path, None))
            await self.stop_agent(leaver)
        if "revoke" in kinds:
            await self.join(revoked, cell)  # not reported: the join above is the join sample
            path = f"/api/v1/nodes/{revoked}/revoke"
            out.append(
                await self.admin_write("revoke", self.mates(revoked), "POST", path, {"reason": "zsim"})
            )
            await self.stop_agent(revoked)
            await self.admin_write("cleanup", frozenset(), "DELETE", f"/api/v1/nodes/{revoked}", None)
        if {"quarantine", "release"} & kinds:
            host = self.rng.choice(pool)
            path = f"/api/v1/nodes/{host}/attributes"
            for kind, value in (("quarantine", "false"), ("release", "true")):
                body = {"attributes": {"admin.healthy": value}}
                out.append(await self.admin_write(kind, self.mates(host), "PUT", path, body))
        if {"flap_down", "flap_up"} & kinds:
            host = self.rng.choice(pool)
            out.append(await self.flap(host, False))
            out.append(await self.flap(host, True))
        if "policy" in kinds:
            out.append(await self.policy())
        return [r for r in out if r["kind"] in kinds]

    async def changes(self, rounds: int, pool: list[str]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for number in range(rounds):
            results += await self.one_round(number, pool)
        return results

    # -- idle cost and map builds -------------------------------------------------------------

    async def idle(self, seconds: float) -> dict[str, Any]:
        before, t0 = usage(self.controller.pid), time.perf_counter()
        calls0 = sum(e.calls for e in self.hub.traffic.values())
        await asyncio.sleep(seconds)
        after, took = usage(self.controller.pid), time.perf_counter() - t0
        calls = sum(e.calls for e in self.hub.traffic.values()) - calls0
        return {
            "seconds": round(took, 2),
            "controller_cpu_s": round(after.cpu_s - before.cpu_s, 3),
            "cpu_share_of_one_core": round((after.cpu_s - before.cpu_s) / took, 4),
            "requests_per_s": round(calls / took, 1),
        }

    async def fetch_samples(self, names: list[str]) -> dict[str, Any]:
        """Sequential, on a quiet network: each sample agent's map, then healthz (baseline)."""
        netmap, health, sizes = Samples(), Samples(), []
        for name in names:
            client = self.agents[name].client
            t0 = time.perf_counter()
            response = await client.get("/api/v1/netmap", timeout=120)
            t1 = time.perf_counter()
            checked(await client.get("/api/v1/healthz", timeout=120), "healthz")
            health.add(time.perf_counter() - t1)
            netmap.add(t1 - t0)
            checked(response, "netmap sample")
            sizes.append(response.num_bytes_downloaded)
        sizes.sort()
        return {
            "netmap_request": netmap.summary(),
            "healthz_request": health.summary(),
            "map_bytes_p50": sizes[len(sizes) // 2] if sizes else None,
        }
