"""The client side of the replica failover lab test, run inside the lab's underlay namespace.

Why a separate process: the lab's controllers listen on underlay addresses that
exist only inside the lab's namespaces, so the 50 API clients and the dashboard
browser must run there; the test (outside) kills the replicas and reads what
this process saw.

``python failover_load.py CONFIG_JSON`` with ``{"urls", "admin_home", "nodes",
"out", "clients", "seed"}``. It prints JSON lines on stdout: ``{"ready": t}``
once everything runs, ``{"calls": n, "t": t}`` twice a second, and
``{"stream": url index, "t": t}`` when the dashboard's stream (re)connects, and
``{"done": path}`` after ``stop`` arrives on stdin (or stdin closes), when the
whole record is in ``out``. Times are ``time.monotonic()`` (system-wide on
Linux, so comparable with the test's own clock).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ztos.client import ApiClient, tls_context
from ztos.enroll.identity_dir import IdentityDir
from ztos.errors import ZtosError

THINK = (0.4, 1.2)  # seconds between one client's calls
STREAM_READ_TIMEOUT = 5.0  # a tick comes every second; silence this long means the replica is gone
PAGE_POLL = 1.0  # the dashboard page's own reads besides the stream


@dataclass
class Call:
    client: int
    op: str
    start: float
    end: float = 0.0
    statuses: list[list[Any]] = field(default_factory=list)  # [url index, HTTP status] per answer
    outcome: str = "ok"  # "ok" or the ZTOS error code the client raised
    marker: str | None = None  # what a write leaves in the audit log


@dataclass
class Tick:
    t: float
    url: int
    id: int | None
    audit: list[int]


@dataclass
class Record:
    calls: list[Call] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    stream_connects: list[list[Any]] = field(default_factory=list)  # [t, url index, Last-Event-ID]
    page_reads: list[list[Any]] = field(default_factory=list)  # [t, url index, status or error]
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, item: Any) -> None:
        with self.lock:
            getattr(self, kind).append(item)

    def as_json(self, audit: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": [asdict(c) for c in self.calls],
                "ticks": [asdict(t) for t in self.ticks],
                "stream_connects": self.stream_connects,
                "page_reads": self.page_reads,
                "errors": self.errors,
                "audit": audit,
            }


EMIT_LOCK = threading.Lock()  # one JSON document per stdout line, whichever thread writes


def emit(line: dict[str, Any]) -> None:
    with EMIT_LOCK:
        print(json.dumps(line), flush=True)


class RecordingClient(ApiClient):
    """``ApiClient`` (fail-over, Idempotency-Key and all) that also notes every HTTP answer."""

    def attach(self) -> RecordingClient:
        self.answers: list[list[Any]] = []
        return self

    def session(self, url: str) -> httpx.Client:
        fresh = url not in self._sessions
        session = super().session(url)
        if fresh:
            index = self.urls.index(url)
            session.event_hooks = {"response": [lambda r: self.answers.append([index, r.status_code])]}
        return session


# --- the 50 API clients --------------------------------------------------------------------------


def operation(rng: random.Random, client: int, n: int, nodes: list[str]) -> tuple[str, str, str, Any]:
    """(op, method, path, body): reads mostly, some writes that leave a unique audit trace."""
    roll = rng.random()
    if roll < 0.40:
        return "node list", "GET", "/api/v1/nodes", None
    if roll < 0.60:
        return "security status", "GET", "/api/v1/security/status", None
    if roll < 0.75:
        return "audit page", "GET", "/api/v1/monitoring/logs?limit=20", None
    if roll < 0.85:
        return "policy state", "GET", "/api/v1/policies/state", None
    if roll < 0.93:
        node = nodes[client % len(nodes)]
        body = {"attributes": {f"admin.zha-c{client}": str(n)}}
        return "set-attr", "PUT", f"/api/v1/nodes/{node}/attributes", body
    return "token create", "POST", "/api/v1/tokens", {"node_name": f"zha-c{client}-{n}", "ttl_seconds": 600}


def marker(op: str, client: int, n: int) -> str | None:
    if op == "set-attr":
        return f"admin.zha-c{client}={n}"
    if op == "token create":
        return f"for node zha-c{client}-{n},"
    return None


def run_client(index: int, config: dict[str, Any], record: Record, stop: threading.Event) -> None:
    urls = list(config["urls"])
    preferred = urls[index % len(urls) :] + urls[: index % len(urls)]  # half prefer each replica
    identity = IdentityDir(Path(config["admin_home"]))
    client = RecordingClient(preferred, tls_context(identity.ca_cert, identity), 10.0).attach()
    rng = random.Random(config["seed"] * 1000 + index)
    n = 0
    while not stop.wait(rng.uniform(*THINK)):
        n += 1
        op, method, path, body = operation(rng, index, n, config["nodes"])
        call = Call(index, op, time.monotonic(), marker=marker(op, index, n))
        client.answers = []
        try:
            client.request(method, path, json=body)
        except ZtosError as exc:
            call.outcome = exc.code
        call.end = time.monotonic()
        call.statuses = [[urls.index(preferred[u]), s] for u, s in client.answers]
        record.add("calls", call)
    client.close()


# --- the dashboard: a browser session and its live stream ------------------------------------------


def browser_session(config: dict[str, Any]) -> tuple[str, Path]:
    """A login code made by the admin (mTLS) and exchanged by a browser (no certificate)."""
    identity = IdentityDir(Path(config["admin_home"]))
    admin = ApiClient.for_identity(list(config["urls"]), identity)
    code = admin.request("POST", "/api/v1/session/login-code", json={"role": "auditor"})["code"]
    with httpx.Client(verify=tls_context(identity.ca_cert, None), timeout=10) as browser:
        answer = browser.post(f"{config['urls'][0]}/api/v1/session/exchange", json={"code": code})
    answer.raise_for_status()
    return str(answer.json()["token"]), identity.ca_cert


@dataclass
class StreamCursor:
    """What a browser's ``EventSource`` keeps across reconnections."""

    token: str
    last_id: str | None = None
    retry: float = 2.0  # seconds, until the server says otherwise


def read_stream(
    browser: httpx.Client,
    url: int,
    config: dict[str, Any],
    cursor: StreamCursor,
    record: Record,
    stop: threading.Event,
) -> None:
    """Follow one connection of the stream until it breaks or ends, updating ``cursor``."""
    headers = {"Last-Event-ID": cursor.last_id} if cursor.last_id else {}
    event, data, event_id = "", "", None
    target = f"{config['urls'][url]}/api/v1/monitoring/stream"
    with browser.stream("GET", target, params={"access_token": cursor.token}, headers=headers) as response:
        response.raise_for_status()
        record.add("stream_connects", [time.monotonic(), url, cursor.last_id])
        emit({"stream": url, "t": time.monotonic()})
        for line in response.iter_lines():
            if line.startswith("retry: "):
                cursor.retry = int(line.removeprefix("retry: ")) / 1000
            elif line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = line.removeprefix("data: ")
            elif line == "" and event:
                if event == "end":
                    record.add("errors", f"stream ended: {data}")
                    return
                if event == "tick":
                    seqs = [int(e["seq"]) for e in json.loads(data)["audit"]]
                    record.add("ticks", Tick(time.monotonic(), url, int(event_id or 0), seqs))
                    cursor.last_id = event_id
                event, data = "", ""
                if stop.is_set():
                    return


def run_dashboard(config: dict[str, Any], record: Record, stop: threading.Event) -> None:
    """``EventSource`` as a browser runs it: on a break, wait the server's ``retry`` and
    reconnect with the same token and ``Last-Event-ID`` (to the other replica, as a name
    resolving to both would)."""
    token, ca = browser_session(config)
    timeout = httpx.Timeout(10, read=STREAM_READ_TIMEOUT, connect=1.5)
    threading.Thread(target=poll_page, args=(config, token, ca, record, stop), daemon=True).start()
    url, cursor = 0, StreamCursor(token)
    with httpx.Client(verify=tls_context(ca, None), timeout=timeout) as browser:
        while not stop.is_set():
            try:
                read_stream(browser, url, config, cursor, record, stop)
            except httpx.HTTPError as exc:
                record.add("errors", f"stream on {url}: {type(exc).__name__}")
            url = (url + 1) % len(config["urls"])
            stop.wait(cursor.retry)


def poll_page(config: dict[str, Any], token: str, ca: Path, record: Record, stop: threading.Event) -> None:
    """The page's own reads with the bearer token, moving to the next replica when one is gone."""
    url = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(verify=tls_context(ca, None), timeout=httpx.Timeout(10, connect=1.5)) as page:
        while not stop.wait(PAGE_POLL):
            try:
                answer = page.get(f"{config['urls'][url]}/api/v1/security/status", headers=headers)
                record.add("page_reads", [time.monotonic(), url, answer.status_code])
            except httpx.TransportError as exc:
                record.add("page_reads", [time.monotonic(), url, type(exc).__name__])
                url = (url + 1) % len(config["urls"])


# --- main ---------------------------------------------------------------------------------------


def report_progress(record: Record, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        emit({"calls": len(record.calls), "t": time.monotonic()})


def audit_log(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Every audit event, paged (at most 100 pages)."""
    admin = ApiClient.for_identity(list(config["urls"]), IdentityDir(Path(config["admin_home"])))
    events: list[dict[str, Any]] = []
    after = 0
    for _ in range(100):
        page = admin.request("GET", "/api/v1/monitoring/logs", params={"after": after, "limit": 10_000})
        events += page["events"]
        if not page["events"]:
            return events
        after = page["next_after"]
    return events


def wait_ready(record: Record, timeout: float = 30.0) -> None:
    """Until the stream has ticked and the clients have answers (bounded)."""
    deadline = time.monotonic() + timeout
    while not (record.ticks and record.calls) and time.monotonic() < deadline:
        time.sleep(0.05)


def main() -> None:
    config = json.loads(sys.argv[1])
    record, stop = Record(), threading.Event()
    threads = [threading.Thread(target=run_dashboard, args=(config, record, stop))]
    threads += [
        threading.Thread(target=run_client, args=(i, config, record, stop)) for i in range(config["clients"])
    ]
    threads += [threading.Thread(target=report_progress, args=(record, stop))]
    for thread in threads:
        thread.start()
    wait_ready(record)
    emit({"ready": time.monotonic()})
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    Path(config["out"]).write_text(json.dumps(record.as_json(audit_log(config))))
    emit({"done": config["out"]})


if __name__ == "__main__":
    main()
