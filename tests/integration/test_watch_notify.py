"""Notified watches end to end: real controller processes over one directory.

A write wakes a watch held on another controller process, a client that hangs
up stops costing reads, and SIGTERM with long-polls open stops the controller
cleanly (exit 0, one line of log, watches answered, streams ended) within a
few seconds.
"""

from __future__ import annotations

import re
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import RunningController, admin_client, free_port, spawn_controller
from ztos.client import ApiClient, tls_context
from ztos.enroll.identity_dir import IdentityDir


def metric(client: ApiClient, url: str, name: str) -> float:
    text = client.session(url).get("/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def create_token(client: ApiClient, name: str) -> None:
    client.request("POST", "/api/v1/tokens", json={"node_name": name, "ttl_seconds": 600})


class Watch(threading.Thread):
    """One long-poll in a thread; ``result`` and ``returned_at`` once it answers."""

    def __init__(self, client: ApiClient, since: int, timeout: float = 30) -> None:
        super().__init__(daemon=True)
        self.client, self.since, self.timeout = client, since, timeout
        self.result: Any = None
        self.error: Exception | None = None
        self.returned_at = 0.0

    def run(self) -> None:
        try:
            params = {"since": self.since, "timeout": self.timeout}
            self.result = self.client.request(
                "GET", "/api/v1/watch", params=params, timeout=self.timeout + 10
            )
        except Exception as exc:  # reported by the test
            self.error = exc
        self.returned_at = time.monotonic()


@pytest.fixture
def second_controller(controller: RunningController, tmp_path: Path) -> Iterator[RunningController]:
    """Another ``controller serve`` process over the same directory file."""
    url, log = f"https://127.0.0.1:{free_port()}", tmp_path / "controller-b.log"
    other = RunningController(controller.home, controller.db, url, None, log)  # type: ignore[arg-type]
    other.process = spawn_controller(controller.db, url, log, controller.env)
    try:
        yield other
    finally:
        other.stop()


def test_a_write_through_one_controller_wakes_a_watch_on_another(
    controller: RunningController, second_controller: RunningController
) -> None:
    writer = admin_client(controller)
    reader = ApiClient.for_identity([second_controller.url], IdentityDir(controller.home))
    revision = reader.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"]
    watch = Watch(reader, revision)
    watch.start()
    wait_until(
        lambda: metric(reader, second_controller.url, "ztos_controller_watches") == 1, 10, "watch open"
    )
    create_token(writer, "via-a")
    written_at = time.monotonic()
    watch.join(timeout=10)
    assert watch.error is None and watch.result is not None, watch.error
    assert watch.returned_at - written_at < 2, "controller B slept through controller A's write"
    assert [c["key"] for c in watch.result["changes"] if c["kind"] == "token"] != []


def test_a_watch_whose_client_hung_up_stops_reading(controller: RunningController) -> None:
    admin = admin_client(controller)
    revision = admin.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"]
    identity = IdentityDir(controller.home)
    port = int(controller.url.rsplit(":", 1)[1])
    context: ssl.SSLContext = tls_context(identity.ca_cert, identity)
    raw = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
    )
    try:
        request = f"GET /api/v1/watch?since={revision}&timeout=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        raw.sendall(request.encode())
        wait_until(lambda: metric(admin, controller.url, "ztos_controller_watches") == 1, 10, "watch open")
    finally:
        raw.close()  # the agent died: its long-poll has 60 s to go
    # The handler returned (the gauge drops in its ``finally``): no read can follow.
    wait_until(
        lambda: metric(admin, controller.url, "ztos_controller_watches") == 0, 2, "watch noticed hang-up"
    )


class Stream(threading.Thread):
    """A dashboard's live stream (server-sent events): the event names it received."""

    def __init__(self, client: ApiClient, url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.url = client, url
        self.events: list[tuple[str, str]] = []
        self.ticking = threading.Event()

    def run(self) -> None:
        with self.client.session(self.url).stream("GET", "/api/v1/monitoring/stream", timeout=30) as response:
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    self.events.append((event, line.removeprefix("data: ")))
                    self.ticking.set()


def test_sigterm_with_open_watches_exits_cleanly(controller: RunningController) -> None:
    admin = admin_client(controller)
    revision = admin.request("GET", "/api/v1/watch", params={"since": 0, "timeout": 0})["revision"]
    watches = [
        Watch(ApiClient.for_identity([controller.url], IdentityDir(controller.home)), revision)
        for _ in range(3)
    ]
    stream = Stream(admin_client(controller), controller.url)
    for thread in (*watches, stream):
        thread.start()
    wait_until(lambda: metric(admin, controller.url, "ztos_controller_watches") == 3, 10, "watches open")
    assert stream.ticking.wait(10), "the stream sent no tick"
    log_before = controller.log.read_text()
    started = time.monotonic()
    controller.process.send_signal(signal.SIGTERM)
    returncode = controller.process.wait(timeout=10)
    stopped_in = time.monotonic() - started
    for thread in (*watches, stream):
        thread.join(timeout=5)
    output = controller.log.read_text()[len(log_before) :]
    assert returncode == 0, output
    assert stopped_in < 3, f"took {stopped_in:.1f}s to stop"
    assert "Traceback" not in output and "CancelledError" not in output, output
    assert output.splitlines() == ["controller stopped (SIGTERM): 3 open watch(es) answered"]
    for watch in watches:
        assert watch.error is None, watch.error
        assert watch.result == {"revision": revision, "changes": []}
        assert watch.returned_at - started < 3
    assert stream.events[-1][0] == "end" and '"stopping"' in stream.events[-1][1], stream.events[-3:]
