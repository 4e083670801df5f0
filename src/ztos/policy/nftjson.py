"""Builders for nftables JSON (libnftables' schema), so the compiler reads like the ruleset.

Objects come out in the shape ``nft -j list ruleset`` prints (``{"table": …}``,
``{"set": …}``, ``{"chain": …}``, ``{"rule": …}``), without handles; the
adapter wraps them in ``add`` commands for one atomic transaction. Nothing
here knows about policies.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ztos.policy.model import PortSpec

Json = dict[str, Any]
Expr = list[Json]

ACCEPT: Json = {"accept": None}
DROP: Json = {"drop": None}
RETURN: Json = {"return": None}
COUNTER: Json = {"counter": None}
LOG_RATE, LOG_BURST = 10, 20  # per second, per log rule: enough to see, too little to flood
LOG_PREFIX_MAX = 127


def payload(protocol: str, field: str) -> Json:
    return {"payload": {"protocol": protocol, "field": field}}


def meta(key: str) -> Json:
    return {"meta": {"key": key}}


def ct(key: str) -> Json:
    return {"ct": {"key": key}}


def match(left: Json, right: Any, op: str = "==") -> Json:
    return {"match": {"op": op, "left": left, "right": right}}


def concat(*parts: Any) -> Json:
    return {"concat": list(parts)}


def at(name: str) -> str:
    """A reference to a named set."""
    return f"@{name}"


def jump(chain: str) -> Json:
    return {"jump": {"target": chain}}


def anon(values: Sequence[Any]) -> Any:
    """One value as itself, several as an anonymous set."""
    return values[0] if len(values) == 1 else {"set": list(values)}


def vmap(key: Json, entries: Sequence[tuple[Any, Json]]) -> Json:
    return {"vmap": {"key": key, "data": {"set": [[k, v] for k, v in entries]}}}


def log(prefix: str) -> Expr:
    """A rate-limited log: over the limit the rule does not match, so the next rule still counts."""
    limited = {"limit": {"rate": LOG_RATE, "burst": LOG_BURST, "per": "second"}}
    return [limited, {"log": {"prefix": prefix[:LOG_PREFIX_MAX], "level": "info"}}]


def ports(specs: Iterable[PortSpec]) -> Any:
    """Port numbers and ranges of tcp/udp specs, as nft wants them."""
    values: list[Any] = []
    for spec in specs:
        assert spec.low is not None and spec.high is not None
        values.append(spec.low if spec.low == spec.high else {"range": [spec.low, spec.high]})
    return anon(values)


def table(family: str, name: str) -> Json:
    return {"table": {"family": family, "name": name}}


def base_chain(family: str, table_name: str, name: str, hook: str, prio: int) -> Json:
    chain = {"family": family, "table": table_name, "name": name}
    return {"chain": {**chain, "type": "filter", "hook": hook, "prio": prio, "policy": "accept"}}


def chain(family: str, table_name: str, name: str) -> Json:
    return {"chain": {"family": family, "table": table_name, "name": name}}


def rule(family: str, table_name: str, chain_name: str, expr: Expr, comment: str | None = None) -> Json:
    body: Json = {"family": family, "table": table_name, "chain": chain_name, "expr": expr}
    if comment:
        body["comment"] = comment[:250]
    return {"rule": body}


def named_set(
    family: str, table_name: str, name: str, kind: str | list[str], elements: list[Any], interval: bool
) -> Json:
    """A named set; ``interval`` when it must hold prefixes (an rbtree or pipapo, else a hash)."""
    body: Json = {"family": family, "table": table_name, "name": name, "type": kind}
    if interval:
        body["flags"] = ["interval"]
    if elements:
        body["elem"] = elements
    return {"set": body}


def address_elements(addresses: Iterable[str], version: int, collapse: bool) -> list[Any]:
    """Sorted and de-duplicated: the canonical element list of an address set.

    ``collapse`` (interval sets) merges hosts and prefixes into the fewest
    prefixes; a hash set gets the host addresses as they are. Done on integers
    (``ipaddress.collapse_addresses`` was most of the compile time at 10,000
    rules) and memoised: rules naming the same group share a list.
    """
    key = tuple(sorted(set(addresses)))
    return list(_collapsed(key, version) if collapse else _hosts(key, version))


def has_prefixes(addresses: Iterable[str]) -> bool:
    """Whether any address covers more than one host (then sets need ``flags interval``)."""
    return any(first != last for _, first, last in map(_range, addresses))


@functools.lru_cache(maxsize=1 << 16)
def _hosts(addresses: tuple[str, ...], version: int) -> tuple[str, ...]:
    numbers = sorted({first for v, first, _ in map(_range, addresses) if v == version})
    return tuple(_text(version, number) for number in numbers)


@functools.lru_cache(maxsize=1 << 16)
def _collapsed(addresses: tuple[str, ...], version: int) -> tuple[Any, ...]:
    bits = 32 if version == 4 else 128
    ranges = sorted(r for r in map(_range, addresses) if r[0] == version)
    merged: list[list[int]] = []
    for _, low, high in ranges:
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple(
        _element(version, start, length, bits)
        for low, high in merged
        for start, length in _blocks(low, high, bits)
    )


@functools.lru_cache(maxsize=1 << 16)
def _range(address: str) -> tuple[int, int, int]:
    """``(version, first, last)`` of an address or prefix, as integers."""
    if "/" not in address:
        host = ipaddress.ip_address(address)
        return host.version, int(host), int(host)
    net = ipaddress.ip_network(address, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)


def _blocks(low: int, high: int, bits: int) -> Iterator[tuple[int, int]]:
    """The fewest aligned prefixes covering ``low..high``: ``(start, prefix length)``."""
    while low <= high:
        size = low & -low if low else 1 << bits
        while size > high - low + 1:
            size >>= 1
        yield low, bits - size.bit_length() + 1
        low += size


def _element(version: int, start: int, length: int, bits: int) -> Any:
    address = _text(version, start)
    return address if length == bits else {"prefix": {"addr": address, "len": length}}


def _text(version: int, number: int) -> str:
    return str(ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number))
