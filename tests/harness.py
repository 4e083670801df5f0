"""Test harness: a real controller process on loopback, driven through the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ztos.client import ApiClient
from ztos.enroll.identity_dir import IdentityDir

ZTOS = [sys.executable, "-m", "ztos"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningController:
    home: Path
    db: Path
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    args: tuple[str, ...] = ()  # extra ``ztos controller serve`` options

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "ZTOS_HOME": str(self.home), "ZTOS_CONTROLLER": self.url}

    def ztos(
        self, *args: str, check: bool = True, home: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = self.env if home is None else {**self.env, "ZTOS_HOME": str(home)}
        result = subprocess.run([*ZTOS, *args], env=env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"ztos {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def start(self) -> None:
        self.process = spawn_controller(self.db, self.url, self.log, self.env, self.args)


def spawn_controller(
    db: Path, url: str, log: Path, env: dict[str, str], args: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    port = url.rsplit(":", 1)[1]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*ZTOS, "controller", "serve", "--db", str(db), "--listen", f"127.0.0.1:{port}", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_healthy(url, process, log)
    return process


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"controller exited: {log.read_text()}")
        try:
            if httpx.get(f"{url}/api/v1/healthz", verify=False, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"controller not healthy after {timeout}s: {log.read_text()}")


def admin_client(controller: RunningController) -> ApiClient:
    return ApiClient.for_identity([controller.url], IdentityDir(controller.home))


def node_client(controller: RunningController, state: Path) -> ApiClient:
    return ApiClient.for_identity([controller.url], IdentityDir(state))


def start_controller(tmp_path: Path, args: tuple[str, ...] = ()) -> RunningController:
    """``ztos init`` a fresh network in ``tmp_path`` and serve it on a free loopback port."""
    home, db = tmp_path / "admin", tmp_path / "controller" / "directory.db"
    url = f"https://127.0.0.1:{free_port()}"
    env = {**os.environ, "ZTOS_HOME": str(home)}
    subprocess.run(
        [*ZTOS, "init", "--db", str(db), "--controller-url", url], env=env, check=True, capture_output=True
    )
    running = RunningController(home, db, url, None, tmp_path / "controller.log", args)  # type: ignore[arg-type]
    running.start()
    return running


def start_replica(first: RunningController, name: str, args: tuple[str, ...] = ()) -> RunningController:
    """A second ``ztos controller serve`` over ``first``'s directory, on another loopback port."""
    url = f"https://127.0.0.1:{free_port()}"
    log = first.log.with_name(f"{name}.log")
    replica = RunningController(first.home, first.db, url, None, log, args)  # type: ignore[arg-type]
    replica.start()
    return replica
