"""The FRR adapter's checks that need neither root nor FRR: input, errors, paths.

vtysh is injected (``FrrInstance(vtysh=...)``), so a stand-in script shows
how vtysh's failures reach the caller; the real daemons are exercised in
``tests/integration/test_routing_evpn.py``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from ztos.errors import InvalidInput, ToolError
from ztos.routing import frr
from ztos.routing.frr import FrrInstance
from ztos.routing.spec import BgpNeighbor, FrrSpec

SPEC = FrrSpec(
    instance="unit-h1",
    asn=65000,
    router_id="10.9.0.1",
    neighbors=(BgpNeighbor("fd00::2"),),
    config_dir="/var/lib/ztos/frr",
)


def fake_vtysh(tmp_path: Path, script: str) -> str:
    path = tmp_path / "vtysh"
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


def test_bad_spec_is_refused_before_anything_runs() -> None:
    with pytest.raises(InvalidInput, match="router_id"):
        FrrInstance(FrrSpec("x", 65000, "fd00::1", (), config_dir="/tmp/x"))


def test_paths_are_per_instance(tmp_path: Path) -> None:
    instance = FrrInstance(SPEC, run_root=tmp_path)
    assert instance.vty_path("bgpd") == tmp_path / "unit-h1" / "bgpd.vty"
    assert instance.pid_path("zebra") == Path("/var/lib/ztos/frr/zebra.pid")
    assert instance.config_path == Path("/var/lib/ztos/frr/frr.conf")


def test_not_running_without_pid_files_or_sockets(tmp_path: Path) -> None:
    spec = FrrSpec("unit-h1", 65000, "10.9.0.1", (), config_dir=str(tmp_path / "cfg"))
    instance = FrrInstance(spec, run_root=tmp_path)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "zebra.pid").write_text(f"{os.getpid()}\n")  # a live pid, but not zebra
    assert instance.pid("zebra") is None
    assert instance.running() is False


def test_vtysh_failure_is_a_tool_error_with_its_own_words(tmp_path: Path) -> None:
    vtysh = fake_vtysh(tmp_path, 'echo "Exiting: failed to connect to any daemons." >&2; exit 1')
    instance = FrrInstance(SPEC, run_root=tmp_path, vtysh=vtysh)
    with pytest.raises(ToolError, match=r"unit-h1.*failed to connect to any daemons") as caught:
        instance.bgp_summary()
    assert caught.value.retry is True


def test_vtysh_arguments_name_the_instance_sockets(tmp_path: Path) -> None:
    vtysh = fake_vtysh(tmp_path, 'echo "$@" > "$(dirname "$0")/args"; echo "{}"')
    assert FrrInstance(SPEC, run_root=tmp_path, vtysh=vtysh).evpn_vnis() == ()
    args = (tmp_path / "args").read_text().split()
    assert args[:4] == ["--config_dir", "/var/lib/ztos/frr", "--vty_socket", str(tmp_path / "unit-h1")]
    assert args[4:] == ["-c", "show", "evpn", "vni", "detail", "json"]


@pytest.mark.parametrize("route_type", [1, 4, 5])
def test_unknown_route_type_is_invalid_input(route_type: int) -> None:
    with pytest.raises(InvalidInput, match="2 \\(MAC/IP\\) or 3 \\(IMET\\)"):
        FrrInstance(SPEC).evpn_routes(route_type)


@pytest.mark.parametrize("vni", [0, 16_777_216, True])
def test_vni_range(vni: int) -> None:
    with pytest.raises(InvalidInput, match="out of range"):
        FrrInstance(SPEC).evpn_macs(vni)


def test_config_dir_parents_must_be_traversable_by_frr() -> None:
    outer = Path(tempfile.mkdtemp(prefix="ztos-unit-"))  # mode 0700, owned by us
    try:
        nobody = (54321, 54321)
        frr._check_traversable(outer, nobody)  # /tmp and / let everyone through
        with pytest.raises(InvalidInput, match=f"{outer} has mode drwx------"):
            frr._check_traversable(outer / "frr", nobody)
        outer.chmod(0o711)
        frr._check_traversable(outer / "frr", nobody)
    finally:
        outer.rmdir()
