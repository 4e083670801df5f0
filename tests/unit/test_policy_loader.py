"""Policy files: valid ones load; invalid ones are refused whole, every problem with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ztos.errors import InvalidInput
from ztos.policy import (
    KnownNames,
    PolicyInvalid,
    PortSpec,
    diff_policies,
    dump_policy,
    load_policy,
    load_policy_file,
    policy_digest,
    policy_from_data,
    port_of,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "policy"

BASE = """\
version: 1
groups:
  finance: {users: [alice]}
services:
  db: {tenant: corp, workloads: [pg1], ports: [tcp/5432]}
rules:
"""


def problems(text: str, known: KnownNames | None = None) -> list[str]:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy(text, "p.yaml", known)
    assert isinstance(caught.value, InvalidInput), "the API maps it to 400"
    return [str(p) for p in caught.value.problems]


def test_the_sample_policy_loads_with_rule_lines() -> None:
    policy = load_policy_file(GOLDEN / "finance.yaml")
    assert [r.name for r in policy.rules][:2] == ["finance-to-db", "marketing-to-web"]
    assert policy.rules[0].line == 29
    assert str(policy.rules[0].ports[0]) == "tcp/5432"  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("tcp/5432", "tcp/5432"),
        ("UDP/1000-2000", "udp/1000-2000"),
        ("icmp", "icmp"),
        ("any", "any"),
        (" tcp/1-65535 ", "tcp/1-65535"),
    ],
)
def test_ports_parse(text: str, spec: str) -> None:
    assert str(PortSpec.model_validate(text)) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tcp/0", "port 0 is out of range"),
        ("tcp/65536", "port 65536 is out of range"),
        ("udp/2000-1000", "range 2000-1000 is reversed"),
        ("tcp", "tcp needs a port or range"),
        ("icmp/8", "icmp takes no port"),
        ("sctp/1", "unknown protocol 'sctp'"),
        ("tcp/ssh", "is not a port"),
        ("tcp/1-", "is not a port"),
    ],
)
def test_bad_ports_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        port_of(text)


def test_port_coverage() -> None:
    spec = PortSpec.model_validate("tcp/1000-2000")
    assert spec.covers("tcp", 1000) and spec.covers("tcp", 2000)
    assert not spec.covers("tcp", 999) and not spec.covers("udp", 1500) and not spec.covers("icmp", None)
    assert PortSpec.model_validate("any").covers("icmp", None)
    assert PortSpec.model_validate("tcp/1500").within(spec) and not spec.within(
        PortSpec.model_validate("tcp/1500")
    )


def test_unknown_group_is_refused_with_its_line() -> None:
    found = problems(BASE + "  - {name: a, from: {groups: [finanse]}, to: {services: [db]}}\n")
    assert found == ["p.yaml:7: rules[0].from.groups[0]: unknown group: defined are finance (got 'finanse')"]


def test_bad_port_range_is_refused_with_its_line() -> None:
    text = BASE + "  - name: a\n    from: '*'\n    to: {workloads: [x]}\n    ports: [udp/2000-1000]\n"
    assert problems(text) == [
        "p.yaml:10: rules[0].ports[0]: range 2000-1000 is reversed: write 1000-2000 (got 'udp/2000-1000')"
    ]


def test_yaml_syntax_error_names_the_line() -> None:
    found = problems(BASE + "  - name: a\n    from: {groups: [finance]\n    to: x\n")
    assert len(found) == 1 and found[0].startswith("p.yaml:9: (document): YAML syntax error")


def test_duplicate_rule_name_is_refused() -> None:
    rule = "  - {name: a, from: {groups: [finance]}, to: {services: [db]}}\n"
    assert problems(BASE + rule + rule) == [
        "p.yaml:8: rules[1].name: duplicate rule name: rule names must be unique (got 'a')"
    ]


def test_duplicate_mapping_keys_are_not_silently_merged() -> None:
    found = problems("groups:\n  g: {users: [a]}\n  g: {users: [b]}\n")
    assert found == ["p.yaml:3: groups.g: duplicate key 'g' (first at line 2)"]


def test_every_problem_is_reported_at_once() -> None:
    text = BASE + (
        "  - name: a\n"  # 7
        "    from: {groups: [finanse]}\n"
        "    to: {services: [dbx]}\n"
        "    ports: [tcp/0]\n"  # 10
        "    when:\n"
        "      - {attr: device.risk_score, op: lq, value: 3}\n"
        "      - {attr: device.risk_score, op: lt, value: high}\n"
        "      - {time: '25:00-18:00'}\n"
        "      - {time: '08:00-18:00', tz: Mars/Olympus}\n"  # 15
        "    prots: [tcp/1]\n"
        "  - name: a\n"
        "    from: {}\n"
        "    to: {workloads: [x]}\n"
    )
    found = problems(text)
    lines = [f.split(": ", 2)[0] + ": " + f.split(": ", 2)[1] for f in found]
    assert lines == [
        "p.yaml:8: rules[0].from.groups[0]",
        "p.yaml:9: rules[0].to.services[0]",
        "p.yaml:10: rules[0].ports[0]",
        "p.yaml:12: rules[0].when[0].op",
        "p.yaml:13: rules[0].when[1].value",
        "p.yaml:14: rules[0].when[2].time",
        "p.yaml:15: rules[0].when[3].tz",
        "p.yaml:16: rules[0].prots",
        "p.yaml:17: rules[1]",
        "p.yaml:17: rules[1].name",
        "p.yaml:18: rules[1].from",
    ], "\n".join(found)
    assert "unknown operator: use one of 'eq'" in found[3] and "(got 'lq')" in found[3]
    assert "lt needs a number (got 'high')" in found[4]
    assert "ports are required when `to` names more than services" in found[8]


def test_rule_ports_must_be_served_by_the_service() -> None:
    text = BASE + "  - {name: a, from: '*', to: {services: [db]}, ports: [tcp/5432, tcp/22]}\n"
    assert problems(text) == ["p.yaml:7: rules[0].ports[1]: service 'db' serves only tcp/5432 (got 'tcp/22')"]


def test_references_are_checked_against_the_directory_when_given() -> None:
    text = BASE + "  - {name: a, from: {tenants: [crop], roles: [dba]}, to: {services: [db]}}\n"
    found = problems(text, KnownNames(tenants=frozenset({"corp"})))
    assert [f.split(": ")[1] for f in found] == ["rules[0].from.roles[0]", "rules[0].from.tenants[0]"]
    load_policy(
        text.replace("crop", "corp").replace("dba", "operator"),
        "p.yaml",
        KnownNames(tenants=frozenset({"corp"})),
    )
    assert problems(
        BASE.replace("tenant: corp", "tenant: hr") + "  []\n", KnownNames(tenants=frozenset({"corp"}))
    )


def test_conditions_validate_their_values() -> None:
    rule = "  - {name: a, from: '*', to: {services: [db]}, when: [%s]}\n"
    for condition, message in [
        ("{attr: location, op: eq, value: x}", "attribute must be tenant, device.NAME"),
        ("{attr: device.x, op: in, value: a}", "in needs a list of values"),
        ("{attr: device.x, op: eq}", "eq needs a value"),
        ("{attr: device.x, op: exists, value: 1}", "exists takes no value"),
        ("{attr: device.x, op: eq, value: [a]}", "eq needs one value, not a list"),
        ("{time: '08:00-08:00'}", "start != end"),
        ("{time: '08:00-18:00', days: [monday]}", "Input should be 'mon'"),
    ]:
        found = problems(BASE + rule % condition)
        assert len(found) == 1 and message in found[0], (condition, found)


def test_a_rest_body_is_validated_the_same_way_without_lines() -> None:
    body = {"rules": [{"name": "a", "from": {"groups": ["nope"]}, "to": "*", "ports": ["tcp/1"]}]}
    with pytest.raises(PolicyInvalid) as caught:
        policy_from_data(body)
    assert [str(p) for p in caught.value.problems] == [
        "api: rules[0].from.groups[0]: unknown group: none is defined (got 'nope')"
    ]
    with pytest.raises(PolicyInvalid, match="a policy is a mapping"):
        policy_from_data(["not", "a", "mapping"])


def test_dump_round_trips_and_the_digest_ignores_formatting() -> None:
    policy = load_policy_file(GOLDEN / "finance.yaml")
    again = load_policy(dump_policy(policy))
    assert again == policy and policy_digest(again) == policy_digest(policy)
    assert diff_policies(policy, again) == []


def test_diff_names_what_changed() -> None:
    old = load_policy_file(GOLDEN / "finance.yaml")
    text = (GOLDEN / "finance.yaml").read_text()
    text = text.replace("users: [alice]", "users: [alice, dave]").replace(
        "ports: [udp/53]", "ports: [udp/53, tcp/53]"
    )
    new = load_policy(text.replace("- name: mesh-ssh", "- name: node-ssh"))
    assert diff_policies(old, new) == [
        "~ group finance: users +dave",
        "- rule mesh-ssh",
        "+ rule node-ssh",
        "~ rule dns: ports +tcp/53",
    ]
