"""Run an external program inside a network namespace (``ip netns exec``).

Shared by the adapters that drive command-line tools (``wg``, ``ping``,
``wireguard-go``), so there is one place that decides how a namespace is
entered and how a tool's failure becomes a ``ToolError`` with its own text.
``netns=None`` runs in the caller's namespace, which is what an agent already
started inside its namespace wants.
"""

from __future__ import annotations

import subprocess

from ztos.errors import ToolError

DEFAULT_TIMEOUT = 10.0


def netns_argv(argv: list[str], netns: str | None) -> list[str]:
    """``argv`` prefixed so it runs in ``netns`` (``ip netns exec`` execs, no extra fork)."""
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def run_in_netns(argv: list[str], netns: str | None, timeout: float = DEFAULT_TIMEOUT) -> str:
    """Run a tool to completion; its stdout, or ``ToolError`` with its stderr."""
    try:
        done = subprocess.run(
            netns_argv(argv, netns), capture_output=True, text=True, timeout=timeout, check=True
        )
    except subprocess.CalledProcessError as exc:
        raise ToolError(f"{' '.join(argv)}: {exc.stderr.strip() or exc}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{' '.join(argv)}: {exc}") from exc
    return done.stdout


def probe_in_netns(argv: list[str], netns: str | None, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
    """Run a probe whose non-zero exit is an answer, not an error: (exit code, output)."""
    try:
        done = subprocess.run(
            netns_argv(argv, netns),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{' '.join(argv)}: {exc}") from exc
    return done.returncode, done.stdout
