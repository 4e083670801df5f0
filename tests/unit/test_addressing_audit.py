import ipaddress
from datetime import UTC, datetime

from ztos import addressing
from ztos.audit import GENESIS_HASH, AuditDraft, seal, verify_chain
from ztos.keys import generate_wg_keypair, wg_public_key


def test_overlay_address_proves_key() -> None:
    ula = addressing.random_ula_prefix()
    assert ula.prefixlen == 48 and ula.network_address.packed[0] == 0xFD
    key = generate_wg_keypair()
    address = addressing.overlay_ipv6(ula, key.public_key)
    assert address in addressing.node_subnet(ula)
    assert addressing.key_matches_address(ula, key.public_key, address)
    assert not addressing.key_matches_address(ula, generate_wg_keypair().public_key, address)
    assert wg_public_key(key.private_key) == key.public_key


def test_tenant_subnets_do_not_overlap_nodes() -> None:
    ula = ipaddress.IPv6Network("fd00:1:2::/48")
    assert str(addressing.tenant_subnet(ula, 1)) == "fd00:1:2:1::/64"
    assert not addressing.tenant_subnet(ula, 1).overlaps(addressing.node_subnet(ula))


def test_ipv4_allocation_skips_gateways_and_taken() -> None:
    prefix = ipaddress.IPv4Network("10.9.0.0/16")
    first = addressing.allocate_ipv4(prefix, [])
    assert str(first) == "10.9.0.10"
    assert str(addressing.allocate_ipv4(prefix, [first])) == "10.9.0.11"


def test_audit_chain_detects_tampering() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = []
    prev = GENESIS_HASH
    for seq in range(1, 5):
        event = seal(prev, seq, at, AuditDraft("admin", "token.create", f"t{seq}"))
        events.append(event)
        prev = event.hash
    assert verify_chain(events) is None
    events[1] = events[1].model_copy(update={"target": "forged"})
    assert verify_chain(events) == 2
    assert verify_chain([events[0], events[2]]) == 3
