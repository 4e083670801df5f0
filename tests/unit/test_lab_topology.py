"""The lab's naming scheme, addresses and process recognition, without root.

Cleanup after a crash relies on these names being a pure function of the lab
name and on one lab's patterns never matching another lab's objects.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from ztos.errors import InvalidInput, NotFound
from ztos.lab import commands, procs, record
from ztos.lab import topology as topo
from ztos.lab.topology import LabTopology, netns_prefix, wg_interface_re


def test_names_follow_the_documented_scheme() -> None:
    lab = LabTopology("demo", 3)
    assert lab.underlay_netns == "ztl-demo-ul"
    assert [h.netns for h in lab.hosts] == ["ztl-demo-h1", "ztl-demo-h2", "ztl-demo-h3"]
    assert [h.wg_interface for h in lab.hosts] == ["ztdemoh1", "ztdemoh2", "ztdemoh3"]
    assert [h.name for h in lab.hosts] == ["h1", "h2", "h3"]
    assert all(name.startswith("ztl-demo-") for name in lab.netns_names)
    assert lab.bridge == "br0"
    assert {h.underlay_link for h in lab.hosts} == {"eth0"}
    assert [h.bridge_port for h in lab.hosts] == ["vh1", "vh2", "vh3"]


def test_interface_names_fit_the_kernel_limit_at_the_extremes() -> None:
    lab = LabTopology("abcdef", topo.MAX_HOSTS)
    assert lab.hosts[-1].wg_interface == "ztabcdefh200"
    assert max(len(h.wg_interface) for h in lab.hosts) <= 15
    assert all(len(h.bridge_port) <= 15 for h in lab.hosts)
    assert len({h.wg_interface for h in lab.hosts}) == topo.MAX_HOSTS


def test_state_lives_under_run_ztos_lab() -> None:
    lab = LabTopology("demo", 2)
    host = lab.host(2)
    assert lab.state_dir == Path("/run/ztos-lab/demo")
    assert lab.lab_file == Path("/run/ztos-lab/demo/lab.json")
    assert lab.admin_home.parent == lab.controller_db.parent.parent == lab.state_dir
    assert host.profile == Path("/run/ztos-lab/demo/hosts/h2/profile.yaml")
    assert host.enrolment == Path("/run/ztos-lab/demo/hosts/h2/state/enrolment.json")
    assert lab.wg_socket(host) == Path("/var/run/wireguard/ztdemoh2.sock")


def test_underlay_addresses() -> None:
    lab = LabTopology("demo", 12)
    prefix = lab.ipv6_prefix
    assert prefix.prefixlen == 64
    assert prefix.subnet_of(ipaddress.IPv6Network("2001:db8::/32"))
    assert lab.controller_ipv6 == prefix.network_address + 1
    assert [str(h.ipv6).rsplit(":", 1)[1] for h in lab.hosts][:3] == ["11", "12", "13"]
    assert str(lab.host(10).ipv6).endswith("::20")
    assert str(lab.controller_ipv4) == "192.0.2.1"
    assert [str(h.ipv4) for h in lab.hosts][:2] == ["192.0.2.11", "192.0.2.12"]
    addresses = [lab.controller_ipv6, *(h.ipv6 for h in lab.hosts)]
    assert len(set(addresses)) == len(addresses)
    assert all(a in prefix for a in addresses)
    assert lab.controller_url == f"https://[{lab.controller_ipv6}]:8443"


def test_every_host_address_is_distinct_and_in_range_up_to_the_maximum() -> None:
    lab = LabTopology("big", topo.MAX_HOSTS)
    v6 = {h.ipv6 for h in lab.hosts}
    v4 = {h.ipv4 for h in lab.hosts}
    assert len(v6) == len(v4) == topo.MAX_HOSTS
    assert all(a in lab.ipv4_prefix and a != lab.ipv4_prefix.broadcast_address for a in v4)


def test_prefix_is_deterministic_and_differs_between_labs() -> None:
    assert LabTopology("demo", 1).ipv6_prefix == LabTopology("demo", 5).ipv6_prefix
    assert LabTopology("demo", 1).ipv6_prefix != LabTopology("demo2", 1).ipv6_prefix


def test_one_labs_patterns_never_match_another_labs_objects() -> None:
    ab, abh1 = LabTopology("ab", 12), LabTopology("abh1", 12)
    assert not any(h.wg_interface for h in abh1.hosts if wg_interface_re("ab").match(h.wg_interface))
    assert all(wg_interface_re("ab").match(h.wg_interface) for h in ab.hosts)
    assert not wg_interface_re("ab").match("ztabh")
    assert not any(n.startswith(netns_prefix("ab")) for n in LabTopology("abc", 3).netns_names)


@pytest.mark.parametrize("name", ["", "Demo", "1lab", "ab-c", "toolong7", "a_b", "ab c"])
def test_bad_lab_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="lab name"):
        LabTopology(name, 1)


@pytest.mark.parametrize(
    ("count", "mtu", "message"),
    [(0, 1500, "--nodes"), (201, 1500, "--nodes"), (2, 1279, "--underlay-mtu"), (2, 9001, "--underlay-mtu")],
)
def test_bad_counts_and_mtus_are_refused(count: int, mtu: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        LabTopology("demo", count, mtu)


def test_hosts_by_name_or_index() -> None:
    lab = LabTopology("demo", 3)
    assert lab.host_named("h2") == lab.host_named("2") == lab.host(2)
    with pytest.raises(InvalidInput, match="h1, h2, h3"):
        lab.host_named("h4")
    assert lab.with_node_count(4).host(4).netns == "ztl-demo-h4"


# --- command lines: built to start a process, recognised to find it again ---------------


def test_processes_are_recognised_by_their_command_line() -> None:
    lab = LabTopology("demo", 2)
    h1, h2 = lab.hosts
    agent = commands.agent_argv(h1, 2.0)
    assert commands.is_agent(agent, h1)
    assert not commands.is_agent(agent, h2)
    assert not commands.is_agent(commands.agent_argv(LabTopology("demo2", 1).host(1), 2.0), h1)
    assert commands.is_controller(commands.controller_argv(lab), lab)
    assert not commands.is_controller(agent, lab)
    assert agent[-8:] == [
        "--interface",
        "ztdemoh1",
        "--reconcile-interval",
        "2",
        "--netns-prefix",
        "ztl-demo-h1-",
        "--frr-instance",
        "ztl-demo-h1",
    ]


def test_what_cleanup_claims_for_a_lab() -> None:
    lab = LabTopology("ab", 1)
    wg_re = wg_interface_re("ab")
    assert commands.belongs_to_lab(["/usr/bin/wireguard-go", "-f", "ztabh1"], lab, wg_re)
    assert not commands.belongs_to_lab(["wireguard-go", "-f", "ztabh1h1"], lab, wg_re)
    assert commands.belongs_to_lab(commands.agent_argv(lab.host(7), 1.0), lab, wg_re)
    assert commands.belongs_to_lab(commands.controller_argv(lab), lab, wg_re)
    assert not commands.belongs_to_lab(["tail", "-f", f"{lab.state_dir}/controller.log"], lab, wg_re)
    assert commands.belongs_to_lab(["ip", "netns", "exec", "ztl-ab-h1", "wireguard-go"], lab, wg_re)
    assert not commands.belongs_to_lab(["ip", "netns", "exec", "ztl-abc-h1", "sleep"], lab, wg_re)
    other = LabTopology("abc", 1)
    assert not commands.belongs_to_lab(commands.agent_argv(other.host(1), 1.0), lab, wg_re)


def test_agents_get_no_ztos_environment_and_admins_get_the_labs() -> None:
    lab = LabTopology("demo", 1)
    base = {"PATH": "/usr/bin", "ZTOS_HOME": "/root/.config/ztos", "ZTOS_CONTROLLER": "https://x"}
    assert commands.agent_env(base) == {"PATH": "/usr/bin", "PYTHONUNBUFFERED": "1"}
    admin = commands.admin_env(lab, base)
    assert admin["ZTOS_HOME"] == str(lab.admin_home)
    assert admin["ZTOS_CONTROLLER"] == lab.controller_url
    hint = commands.admin_hint(lab, ["ztos"], "node", "list")
    assert hint[:4] == ["ip", "netns", "exec", "ztl-demo-ul"]
    assert hint[-3:] == ["ztos", "node", "list"]


def test_lab_record_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(topo, "STATE_ROOT", tmp_path)
    saved = record.LabRecord("demo", 2, 1400, 2.0, controller_pids={1: 10}).with_agent("h1", 11)
    record.save(saved)
    assert record.load("demo") == saved and record.load("demo").controller_pid == 10
    assert record.load("demo").topology == LabTopology("demo", 2, 1400)
    assert record.load("demo").with_agent("h1", None).agent_pids == {}
    record.remove("demo")
    with pytest.raises(NotFound, match="is not up"):
        record.load("demo")


def test_lab_record_keeps_the_dns_back_end_and_every_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(topo, "STATE_ROOT", tmp_path)
    saved = record.LabRecord("demo", 3, 1500, 10.0, "bind", 2).with_controller(1, 10).with_controller(2, 20)
    record.save(saved)
    assert record.load("demo") == saved
    assert record.load("demo").topology == LabTopology("demo", 3, 1500, "bind", 2)
    assert record.load("demo").with_controller(1, None).controller_pids == {2: 20}


def test_a_record_from_before_several_controllers_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(topo, "STATE_ROOT", tmp_path)
    record.lab_file("demo").parent.mkdir(parents=True)
    old = {"name": "demo", "node_count": 2, "underlay_mtu": 1500, "reconcile_interval": 2}
    old["controller_pid"] = 7
    record.lab_file("demo").write_text(json.dumps(old))
    assert record.load("demo").controller_pids == {1: 7}
    assert record.load("demo").topology == LabTopology("demo", 2)


# --- several controllers over one directory ---------------------------------------------


def test_controllers_have_their_own_addresses_below_the_hosts_and_one_log_each() -> None:
    lab = LabTopology("demo", 4, controller_count=2)
    first, second = lab.controllers
    prefix = lab.ipv6_prefix.network_address
    assert (first.ipv6, second.ipv6) == (prefix + 1, prefix + 2)
    assert (str(first.ipv4), str(second.ipv4)) == ("192.0.2.1", "192.0.2.2")
    assert lab.controller_urls == (f"https://[{prefix + 1}]:8443", f"https://[{prefix + 2}]:8443")
    assert lab.controller_url == first.url and lab.controller_log == first.log
    assert (first.log.name, second.log.name) == ("controller.log", "controller2.log")
    assert not {first.ipv6, second.ipv6} & {h.ipv6 for h in lab.hosts}
    assert lab.with_node_count(5).controller_count == 2
    with pytest.raises(InvalidInput, match="has controllers 1-2, not 3"):
        lab.controller(3)


@pytest.mark.parametrize("count", [0, 10])
def test_controller_count_is_bounded(count: int) -> None:
    with pytest.raises(InvalidInput, match=f"--controllers {count} must be between 1 and 9"):
        LabTopology("demo", 2, controller_count=count)


def test_every_controller_lists_every_url_and_only_the_first_serves_dns() -> None:
    lab = LabTopology("demo", 2, controller_count=2)
    first, second = (commands.controller_argv(lab, i) for i in (1, 2))
    for argv, controller in ((first, lab.controller(1)), (second, lab.controller(2))):
        assert argv[argv.index("--listen") + 1] == controller.listen
        assert [argv[i + 1] for i, a in enumerate(argv) if a == "--url"] == list(lab.controller_urls)
    assert "--dns-listen" in first and "--dns-listen" not in second
    init = commands.init_argv(lab)
    assert [init[i + 1] for i, a in enumerate(init) if a == "--controller-url"] == list(lab.controller_urls)
    assert commands.is_controller(second, lab) and commands.is_controller(second, lab, 2)
    assert not commands.is_controller(second, lab, 1)


def test_with_several_controllers_the_admin_fails_over_through_its_config() -> None:
    lab = LabTopology("demo", 1, controller_count=2)
    assert "ZTOS_CONTROLLER" not in commands.admin_env(lab, {"ZTOS_CONTROLLER": "https://x"})
    assert not any(a.startswith("ZTOS_CONTROLLER=") for a in commands.admin_hint(lab, ["ztos"]))


def test_posture_timeout_follows_the_reconcile_interval() -> None:
    assert commands.posture_timeout(2.0) == commands.POSTURE_TIMEOUT
    assert commands.posture_timeout(10.0) == 30.0
    argv = commands.controller_argv(LabTopology("demo", 1), 1, 10.0)
    assert argv[argv.index("--posture-timeout") + 1] == "30"


def test_listening_sockets_are_read_from_proc_net_in_host_byte_order() -> None:
    assert str(procs.proc_net_address("0100007F")) == "127.0.0.1"
    assert str(procs.proc_net_address("00000000000000000000000001000000")) == "::1"
