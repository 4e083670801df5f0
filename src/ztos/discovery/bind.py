"""The BIND 9 adapter: render its configuration, run ``named``, change its keys.

Why: when a network outgrows the embedded server, BIND serves the same zone
with the same keys and the same policy table (DESIGN principle 4). Clients do
not change: ``DnsUpdater`` speaks RFC 2136 + TSIG to either server.

Rendering is pure (``render_named_conf``, ``render_zone_file``): everything
lives in one state directory (``directory``, ``pid-file``, ``session-keyfile``,
``managed-keys-directory``, the zone file and its journal), ``named`` listens
on one address/port, ``recursion no``, ``notify no``, ``controls { };`` (no
rndc), the zone is a primary with ``update-policy`` grants rendered from the
``Policy`` table (host keys ``subdomain <host>.<zone>.`` with their types,
the controller ``zonesub ANY``) and ``allow-transfer`` from the ``TransferAcl``.

``BindServer`` runs ``named -g`` (foreground, logging to ``named.log`` in the
state directory) as a child process in its own session and waits, bounded,
until it answers the zone's SOA. Keys: BIND only knows TSIG keys written in
its configuration, so ``add_key``/``remove_key`` re-render ``named.conf``,
check it with ``named-checkconf`` (a rejected config is never installed; the
old one keeps running), replace it atomically and send SIGHUP, which is how
BIND reloads without rndc. They return once named logs that the reload
succeeded and answers the SOA again; a failed reload raises ``ToolError``.

Persistence is BIND's own: the zone file is written only when absent, after
that BIND keeps updates in its journal (``<zone file>.jnl``) and folds them
into the zone file itself, so a restarted ``BindServer`` serves what it had.

AppArmor: Debian ships a profile for ``/usr/sbin/named`` that only lets it
write below ``/var/cache/bind`` and ``/var/lib/bind``. Where AppArmor is
enforcing, use a state directory there (or put the profile in complain
mode); otherwise named's "permission denied" comes back as a ``ToolError``.
(The development machine, like COMPONENTS.md's, had AppArmor off.)

Errors are ``ToolError`` with named's (or named-checkconf's) own text in the
message and, as ``__cause__``, a ``NamedError`` or ``CalledProcessError``
carrying the full output.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from ztos.discovery import keys as keys_mod
from ztos.discovery import names
from ztos.discovery.engine import TransferAcl
from ztos.discovery.policy import Grant, Policy, SubdomainOf, ZoneWide
from ztos.discovery.zone import Zone
from ztos.errors import ToolError

Name = dns.name.Name
CONF = "named.conf"
ZONE_FILE = "zone.db"
LOG = "named.log"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
POLL = 0.02
RELOAD_OK = "reloading configuration succeeded"
RELOAD_FAILED = "reloading configuration failed"
RUNNING = " running\n"


class NamedError(Exception):
    """named's own output (the cause of a ``ToolError``)."""


@dataclass(frozen=True)
class BindConfig:
    """Everything ``named.conf`` says, as data."""

    state_dir: Path
    zone: Name
    policy: Policy
    keys: Mapping[Name, str] = field(default_factory=dict)
    transfer: TransferAcl = field(default_factory=TransferAcl)
    listen: str = "127.0.0.1"
    port: int = 53
    zone_file: str = ZONE_FILE


# --- rendering (pure) ----------------------------------------------------------------------------


def _quoted(name: Name) -> str:
    return f'"{name.to_text()}"'


def render_keys(keys: Mapping[Name, str]) -> str:
    return "".join(
        f'key {_quoted(name)} {{\n\talgorithm hmac-sha256;\n\tsecret "{secret}";\n}};\n'
        for name, secret in sorted(keys.items())
    )


def render_grant(key: Name, grant: Grant) -> str:
    types = "ANY" if grant.types is None else " ".join(sorted(t.name for t in grant.types))
    if isinstance(grant, ZoneWide):
        return f"grant {_quoted(key)} zonesub {types};"
    assert isinstance(grant, SubdomainOf)
    return f"grant {_quoted(key)} subdomain {grant.name.to_text()} {types};"


def render_update_policy(policy: Policy, keys: Iterable[Name]) -> str:
    """Grants for keys BIND knows; none at all means updates are off (``allow-update { none; }``)."""
    known = set(keys)
    lines = [render_grant(key, g) for key in policy.key_names() if key in known for g in policy.grants[key]]
    if not lines:
        return "allow-update { none; };"
    return "update-policy {\n" + "".join(f"\t\t{line}\n" for line in lines) + "\t};"


def render_transfer(acl: TransferAcl) -> str:
    items = [f"key {_quoted(key)};" for key in sorted(acl.keys)] + [f"{net};" for net in acl.networks]
    return "allow-transfer { " + (" ".join(items) or "none;") + " };"


def _listen(config: BindConfig) -> str:
    ipv6 = ipaddress.ip_address(config.listen).version == 6
    v4 = f"listen-on port {config.port} {{ {config.listen}; }};" if not ipv6 else "listen-on { none; };"
    v6 = f"listen-on-v6 port {config.port} {{ {config.listen}; }};" if ipv6 else "listen-on-v6 { none; };"
    return f"\t{v4}\n\t{v6}\n"


def render_named_conf(config: BindConfig) -> str:
    """The whole ``named.conf``: keys, options confined to the state dir, one primary zone."""
    state = config.state_dir
    options = (
        "options {\n"
        f'\tdirectory "{state}";\n'
        f'\tpid-file "{state / "named.pid"}";\n'
        f'\tsession-keyfile "{state / "session.key"}";\n'
        f'\tmanaged-keys-directory "{state}";\n'
        f'\tdump-file "{state / "named_dump.db"}";\n'
        f'\tstatistics-file "{state / "named.stats"}";\n'
        f"{_listen(config)}"
        "\trecursion no;\n\tnotify no;\n\tdnssec-validation no;\n\tallow-query { any; };\n"
        "};\n"
    )
    zone = (
        f"zone {_quoted(config.zone)} {{\n\ttype primary;\n"
        f'\tfile "{state / config.zone_file}";\n'
        f"\t{render_update_policy(config.policy, config.keys)}\n"
        f"\t{render_transfer(config.transfer)}\n}};\n"
    )
    header = "# Written by ZTOS (ztos.discovery.bind); changes are overwritten.\n"
    return header + render_keys(config.keys) + options + "controls { };\n" + zone


def render_zone_file(zone: Zone) -> str:
    return "".join(f"{line}\n" for line in zone.to_texts())


# --- the process ----------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``host`` right now (tests, benchmarks, labs)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = int(udp.getsockname()[1])
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return port
    raise ToolError(f"no port free for both UDP and TCP on {host}")


class BindServer:
    """A ``named`` child process serving one zone from ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        zone: Zone,
        keys: Mapping[str, str],
        policy: Policy,
        *,
        listen: str = "127.0.0.1",
        port: int = 53,
        transfer: TransferAcl | None = None,
        named: str = "named",
        checkconf: str = "named-checkconf",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        secrets = {names.as_name(k): v for k, v in keys.items()}
        for secret in secrets.values():
            keys_mod.decode_secret(secret)  # InvalidInput now, not a BIND error later
        self.config = BindConfig(
            state_dir, zone.origin, policy, secrets, transfer or TransferAcl(), listen, port
        )
        self.initial_zone = zone
        self.named, self.checkconf, self.start_timeout = named, checkconf, start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return self.config.listen, self.config.port

    @property
    def state_dir(self) -> Path:
        return self.config.state_dir

    @property
    def log_path(self) -> Path:
        return self.state_dir / LOG

    def start(self) -> None:
        """Write config (and the zone file if absent), run ``named -g``, wait until it answers."""
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        zone_path = self.state_dir / self.config.zone_file
        if not zone_path.exists():
            zone_path.write_text(render_zone_file(self.initial_zone))
        self._install_config(self.config)
        self._log = self.log_path.open("ab")
        argv = [self.named, "-g", "-c", str(self.state_dir / CONF)]
        try:
            self.process = subprocess.Popen(
                argv, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
            )
        except OSError as exc:
            raise ToolError(f"cannot run {self.named}: {exc.strerror} (install bind9)") from exc
        self._wait_ready(self.start_timeout, 0, "start")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait; safe to call twice."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None

    def add_key(self, name: str, secret: str, grants: Iterable[Grant] = ()) -> None:
        key = names.as_name(name)
        keys_mod.decode_secret(secret)
        policy = self.config.policy.with_key(key, grants)
        self._reconfigure(replace(self.config, keys={**self.config.keys, key: secret}, policy=policy))

    def remove_key(self, name: str) -> None:
        key = names.as_name(name)
        keys = {k: v for k, v in self.config.keys.items() if k != key}
        acl = replace(self.config.transfer, keys=self.config.transfer.keys - {key})
        self._reconfigure(
            replace(self.config, keys=keys, policy=self.config.policy.without_key(key), transfer=acl)
        )

    def __enter__(self) -> BindServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------------

    def _install_config(self, config: BindConfig) -> None:
        """Check the rendered config with named-checkconf, then swap it in atomically."""
        path = self.state_dir / CONF
        candidate = path.with_suffix(".conf.new")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(render_named_conf(config))
        result = subprocess.run([self.checkconf, str(candidate)], capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            candidate.unlink(missing_ok=True)
            error = subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
            text = (result.stdout + result.stderr).strip()
            raise ToolError(f"named-checkconf rejected the new configuration: {text}") from error
        os.replace(candidate, path)

    def _reconfigure(self, config: BindConfig) -> None:
        self._install_config(config)
        self.config = config
        if self.process is None:
            return
        offset = self.log_path.stat().st_size
        self.process.send_signal(signal.SIGHUP)
        self._wait_ready(self.start_timeout, offset, "reload")

    def _wait_ready(self, timeout: float, offset: int, what: str) -> None:
        """Until named logged success (reload) and answers the SOA; ToolError if it dies or says no."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._raise_if_failed(offset, what)
            if self._log_ok(offset, what) and self._answers_soa():
                return
            time.sleep(POLL)
        self._fail(f"named did not {what} within {timeout:.0f} s", offset)

    def _raise_if_failed(self, offset: int, what: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            self._fail(f"named exited with status {self.process.returncode} during {what}", offset)
        if what == "reload" and RELOAD_FAILED in self._log_text(offset):
            self._fail("named could not reload its configuration", offset)

    def _log_ok(self, offset: int, what: str) -> bool:
        text = self._log_text(offset)
        return what != "reload" or (RELOAD_OK in text and RUNNING in text.split(RELOAD_OK, 1)[1])

    def _log_text(self, offset: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _fail(self, summary: str, offset: int) -> None:
        text = self._log_text(offset)
        errors = [line for line in text.splitlines() if _looks_like_error(line)]
        detail = "; ".join(errors[-3:] or text.strip().splitlines()[-1:])
        raise ToolError(f"{summary}: {detail} (log: {self.log_path})") from NamedError(text[-4000:])

    def _answers_soa(self) -> bool:
        query = dns.message.make_query(self.config.zone, dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, self.config.listen, timeout=0.2, port=self.config.port)
        except (dns.exception.DNSException, OSError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)


def _looks_like_error(line: str) -> bool:
    lowered = line.lower()
    return any(
        word in lowered for word in ("error", "failed", "could not", "unexpected", "unknown", "not found")
    )
