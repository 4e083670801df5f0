"""The lab admin's API client, run inside the underlay namespace, timing every call.

Why: the lab's controllers listen on underlay addresses that only the lab's
namespaces reach, and ``run_admin`` starts a whole CLI process per call (about a
second of interpreter start-up and exit around a 50 ms request). Timing a change
"from the call returning" needs the call itself: this keeps one
``ztos.client.ApiClient`` (keep-alive mTLS, fail-over across every controller)
in a helper process there and reports when each call started and returned
(``time.time()``, comparable with ``ztos.lab.probes``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from ztos.errors import ToolError
from ztos.lab import commands, procs
from ztos.lab.topology import LabTopology

HELPER = (
    "import json, sys, time\n"
    "from pathlib import Path\n"
    "from ztos.client import ApiClient\n"
    "from ztos.enroll.identity_dir import IdentityDir\n"
    "from ztos.errors import ZtosError\n"
    "client = ApiClient.for_identity(sys.argv[2:], IdentityDir(Path(sys.argv[1])))\n"
    "for line in sys.stdin:\n"
    "    call = json.loads(line); start = time.time(); error = body = None\n"
    "    try:\n"
    "        body = client.request(call['method'], call['path'], json=call.get('json'))\n"
    "    except ZtosError as exc:\n"
    "        error = f'{exc.code}: {exc.detail}'\n"
    "    print(json.dumps({'start': start, 'end': time.time(), 'error': error, 'body': body}), flush=True)\n"
)


class AdminApi:
    """Calls the lab's API as its admin; ``call`` returns (start, return, body)."""

    def __init__(self, topology: LabTopology) -> None:
        argv = [sys.executable, "-c", HELPER, str(topology.admin_home), *topology.controller_urls]
        self.process = subprocess.Popen(
            procs.netns_argv(argv, topology.underlay_netns),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=commands.agent_env(),
        )

    def call(self, method: str, path: str, body: Any = None) -> tuple[float, float, Any]:
        """One request; ``ToolError`` with the controller's answer when it refused it."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"method": method, "path": path, "json": body}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()  # bounded: the client's own timeouts (10 s per URL)
        if not line:
            raise ToolError(f"the lab's admin API helper exited (status {self.process.poll()})")
        answer = json.loads(line)
        if answer["error"]:
            raise ToolError(f"{method} {path}: {answer['error']}")
        return float(answer["start"]), float(answer["end"]), answer["body"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
