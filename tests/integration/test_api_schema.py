"""Property-based run of the whole API against its own OpenAPI schema (schemathesis).

A real controller is started with ``tests/harness.py``; schemathesis reads
``/api/v1/openapi.json`` from it and sends generated requests (valid and
invalid) over mTLS, first as an enrolled node to the node-only operations,
then as the admin to every operation. It fails on any 5xx, any response body
that does not match the schema (errors included: every error must be the
documented ``{error, detail}``) and any undocumented content type.

Bounded and reproducible: 10 examples per operation, a fixed seed, no
shrinking, one worker (about 60 s here). Left out: the two routes that hold
the connection open by design (``/watch`` long-polls up to 60 s,
``/monitoring/stream`` streams until the client leaves), which have their own
tests. Destructive operations stay in (the controller is thrown away); the
node's run comes first because the admin's may revoke or delete that node.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import RunningController
from ztos.enroll.identity_dir import IdentityDir

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
LONG_HELD = r"^/api/v1/(watch|monitoring/stream)$"
NODE_ONLY = r"^/api/v1/(netmap(/update)?|nodes/self/.+)$"
BUDGET_S = 240


def schemathesis() -> list[str]:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    if found is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    return [found]


def run_schemathesis(controller: RunningController, identity: IdentityDir, cwd: Path, *filters: str) -> str:
    argv = [
        *schemathesis(),
        "run",
        f"{controller.url}/api/v1/openapi.json",
        "--request-cert",
        str(identity.tls_cert),
        "--request-cert-key",
        str(identity.tls_key),
        "--tls-verify",
        str(identity.ca_cert),
        "--checks",
        CHECKS,
        "--max-examples",
        "10",
        "--seed",
        "20251",
        "--no-shrink",
        "--phases",
        "examples,coverage,fuzzing",
        # One worker: CPython 3.11's ast.parse is not thread-safe, and hypothesis parses
        # lambdas while describing strategies ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "10",
        *filters,
    ]
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=BUDGET_S, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-15000:]
    assert "generated" in output and " passed" in output, output[-3000:]
    return output


def test_admin_and_node_calls_conform_to_the_schema(controller: RunningController, tmp_path: Path) -> None:
    start = time.monotonic()
    profile, state = tmp_path / "h1.yaml", tmp_path / "h1"
    controller.ztos("token", "create", "--name", "h1", "--profile-out", str(profile))
    controller.ztos("enroll", "--profile", str(profile), "--state-dir", str(state))
    controller.ztos("tenant", "create", "blue")

    # The node first: the admin's run may well revoke or delete it (schemathesis reuses
    # names it saw in responses, "h1" included), which is fair game for an admin.
    node = run_schemathesis(controller, IdentityDir(state), tmp_path, "--include-path-regex", NODE_ONLY)
    admin = run_schemathesis(
        controller, IdentityDir(controller.home), tmp_path, "--exclude-path-regex", LONG_HELD
    )

    assert re.search(r"Tested: [1-9]", node) and "only 401/403" not in node, node[-3000:]
    assert re.search(r"Tested: [3-9]\d", admin), admin[-3000:]
    assert controller.process.poll() is None, "the controller survived"
    assert time.monotonic() - start < BUDGET_S, admin[-1000:]
