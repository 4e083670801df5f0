"""The nftables adapter's guards, without nft: ownership and command shapes are checked first."""

from __future__ import annotations

import pytest

from ztos.dataplane import nftables
from ztos.errors import InvalidInput


def test_tables_ztos_does_not_own_are_refused_before_nft_runs() -> None:
    foreign = {"nftables": [{"table": {"family": "inet", "name": "filter"}}]}
    with pytest.raises(InvalidInput, match="'filter' is not ZTOS's"):
        nftables.apply(foreign)
    with pytest.raises(InvalidInput, match="not ZTOS's"):
        nftables.flush_table("inet", "firewalld")
    element = {"element": {"family": "inet", "table": "filter", "name": "s", "elem": ["10.0.0.1"]}}
    with pytest.raises(InvalidInput, match="not ZTOS's"):
        nftables.update_sets([{"add": element}])


def test_update_sets_takes_element_commands_only() -> None:
    with pytest.raises(InvalidInput, match="element add/delete commands only"):
        nftables.update_sets([{"flush": {"ruleset": None}}])
    with pytest.raises(InvalidInput, match="element add/delete commands only"):
        nftables.update_sets([{"delete": {"table": {"family": "inet", "name": "ztos-host"}}}])


def test_objects_must_follow_their_table() -> None:
    orphan = {"nftables": [{"chain": {"family": "inet", "table": "ztos-host", "name": "input"}}]}
    with pytest.raises(InvalidInput, match="comes before its table ztos-host"):
        nftables.apply(orphan)
    with pytest.raises(InvalidInput, match=r'a ruleset is \{"nftables"'):
        nftables.apply({"rules": []})
