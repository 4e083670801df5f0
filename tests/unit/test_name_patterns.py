"""Every name and key rule refuses what only looks like a valid value.

``re.match`` with ``$`` accepted ``"web\\n"`` as a node, tenant, workload,
tag, attribute key, policy name…; ``\\d`` accepted non-ASCII digits. Each row
is one rule with a value it accepts; every row must refuse that value with a
trailing newline or NUL, '/', '.', '..', and Cyrillic or fullwidth look-alikes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, TypeAdapter

from ztos import model, naming
from ztos.cli.context import checked_name, parse_duration
from ztos.controller.tenants import TenantRequest, WorkloadRequest
from ztos.dataplane import state as dp_state
from ztos.dataplane import tenant_state
from ztos.discovery import names as dns_names
from ztos.enroll.profile import Profile
from ztos.errors import InvalidInput
from ztos.lab.topology import check_lab_name
from ztos.policy import model as policy

Check = Callable[[str], object]
REFUSED = (ValueError, InvalidInput)  # pydantic's ValidationError is a ValueError


def field(record: type[BaseModel], name: str) -> Check:
    """Validate one field of a model on its own (its type and every constraint)."""
    info = record.model_fields[name]
    shape: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(shape)

    def check(value: str) -> object:
        return adapter.validate_python(value)

    return check


def accepting(predicate: Callable[[str], bool]) -> Check:
    def check(value: str) -> object:
        if not predicate(value):
            raise ValueError(value)
        return value

    return check


def attr_key(value: str) -> object:
    return TypeAdapter(model.Attributes).validate_python({value: "x"})


def tag_list(value: str) -> object:
    return field(model.Workload, "tags")([value])  # type: ignore[list-item]


def selector_tag(value: str) -> object:
    return policy.Selector.model_validate({"tags": [value]})


def service_tag(value: str) -> object:
    return policy.ServiceDef.model_validate({"tenant": "blue", "tags": [value], "ports": ["tcp/80"]})


def group_name(value: str) -> object:
    return policy.Policy.model_validate({"groups": {value: {}}})


def group_member(value: str) -> object:
    return policy.GroupDef.model_validate({"users": [value]})


def rule_name(value: str) -> object:
    return policy.Rule.model_validate({"name": value, "from": "*", "to": "*"})


def condition_attr(value: str) -> object:
    return policy.AttrCondition.model_validate({"attr": value, "op": "exists"})


def time_window(value: str) -> object:
    return policy.TimeCondition.model_validate({"time": value})


RULES: list[tuple[str, Check, str]] = [
    ("naming.is_name", accepting(naming.is_name), "web"),
    ("model.Name", TypeAdapter(model.Name).validate_python, "web"),
    ("node name", field(model.Node, "name"), "h1"),
    ("tenant name", field(TenantRequest, "name"), "blue"),
    ("workload name", field(WorkloadRequest, "name"), "db"),
    ("workload owner", field(WorkloadRequest, "owner"), "alice"),
    ("workload tag", tag_list, "prod"),
    ("workload netns", field(WorkloadRequest, "netns"), "container1"),
    ("stored workload netns", field(model.Workload, "netns"), "container1"),
    ("workload mac", field(model.Workload, "mac"), "02:00:5e:00:01:01"),
    ("token node name", field(model.Token, "node_name"), "h1"),
    ("token id", field(model.Token, "id"), "abcdefgh12"),
    ("token secret hash", field(model.Token, "secret_sha256"), "a" * 64),
    ("tsig key name", field(model.TsigKey, "key_name"), "ztos-zone."),
    ("profile CA fingerprint", field(Profile, "ca_fingerprint"), "0" * 64),
    ("attribute key", attr_key, "location"),
    ("naming.is_attr_key", accepting(naming.is_attr_key), "posture.healthy"),
    ("policy selector tag", selector_tag, "prod"),
    ("policy service tag", service_tag, "prod"),
    ("policy group name", group_name, "finance"),
    ("policy group member", group_member, "alice"),
    ("policy rule name", rule_name, "finance-to-db"),
    ("policy condition attribute", condition_attr, "device.healthy"),
    ("policy time window", time_window, "08:00-18:00"),
    ("dns host label", lambda v: dns_names.check_label(v, "host"), "h1"),
    ("dns service", lambda v: dns_names.check_service(v, "tcp"), "http"),
    ("lab name", check_lab_name, "zh1"),
    ("interface name", dp_state.check_ifname, "zth1"),
    ("dataplane label", lambda v: tenant_state.check_label(v, "tenant"), "blue"),
    ("dataplane netns", lambda v: tenant_state.check_netns_name(v, "workload"), "ztos-blue"),
    ("dataplane mac", lambda v: tenant_state.check_unicast_mac(v, "workload"), "02:00:5e:00:01:01"),
    ("cli name", checked_name, "web"),
    ("cli duration", parse_duration, "15m"),
]


def look_alikes(valid: str) -> list[str]:
    """Trailing newline and NUL, path pieces, and non-ASCII twins of the first character."""
    first = valid[0]
    twins = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "c": "\u0441", "p": "\u0440", "x": "\u0445"}
    fullwidth = chr(ord(first) + 0xFEE0) if "!" <= first <= "~" else first
    return [
        valid + "\n",
        valid + "\r\n",
        valid + "\x00",
        "\x00" + valid,
        "/",
        ".",
        "..",
        "",
        f"../{valid}",
        f"{valid}/x",
        fullwidth + valid[1:],
        twins.get(first, "\u0430") + valid[1:],
    ]


@pytest.mark.parametrize(("what", "check", "valid"), RULES, ids=[row[0] for row in RULES])
def test_rule_accepts_its_example(what: str, check: Check, valid: str) -> None:
    check(valid)


@pytest.mark.parametrize(("what", "check", "valid"), RULES, ids=[row[0] for row in RULES])
def test_rule_refuses_newline_nul_paths_and_look_alikes(what: str, check: Check, valid: str) -> None:
    accepted = []
    for bad in look_alikes(valid):
        try:
            check(bad)
        except REFUSED:
            continue
        accepted.append(bad)
    assert accepted == [], f"{what} accepted {accepted!r}"


def test_non_ascii_digits_are_not_digits() -> None:
    """``\\d`` would take fullwidth and Arabic-Indic digits (and int() would read them)."""
    for bad in ["\uff11\uff15m", "\u0661\u0665m"]:
        with pytest.raises(InvalidInput):
            parse_duration(bad)
    with pytest.raises(ValueError):
        time_window("\uff10\uff18:00-18:00")


@pytest.mark.parametrize("netns", [".", "..", "a/b", "/run/netns/x", "a\x00", "x" * 65, "", "web\n"])
def test_a_workload_namespace_is_one_entry_of_run_netns(netns: str) -> None:
    with pytest.raises(ValueError, match="/run/netns"):
        WorkloadRequest(name="db", tenant="blue", node="h1", netns=netns)


@pytest.mark.parametrize("segment", ["", ".", ".."])
def test_dot_segments_are_never_sent(segment: str) -> None:
    """Quoting leaves dots alone and HTTP clients resolve them, so they are refused."""
    with pytest.raises(ValueError):
        naming.path_segment(segment)


def test_path_segments_are_quoted_whole() -> None:
    assert naming.path_segment("x/../victim") == "x%2F..%2Fvictim"
    assert naming.path_segment("web\n") == "web%0A"
