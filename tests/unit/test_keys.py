"""WireGuard public keys offered by hosts: base64 of 32 bytes, never a low-order point."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ztos import keys

P = 2**255 - 19
# libsodium's blocklist (crypto_scalarmult/curve25519/ref10), written out here so the
# test does not trust the module's own table; each with the ignored top bit clear and set.
LIBSODIUM_BLOCKLIST_HEX = (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)


def with_top_bit(raw: bytes) -> bytes:
    return raw[:31] + bytes([raw[31] | 0x80])


LOW_ORDER = [bytes.fromhex(h) for h in LIBSODIUM_BLOCKLIST_HEX]
LOW_ORDER += [with_top_bit(raw) for raw in LOW_ORDER]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("raw", LOW_ORDER, ids=lambda raw: raw.hex()[:8] + "…" + raw.hex()[-2:])
def test_every_low_order_point_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError, match="low-order"):
        keys.check_wg_public_key(b64(raw))


@pytest.mark.parametrize("raw", LOW_ORDER, ids=lambda raw: raw.hex()[:8] + "…" + raw.hex()[-2:])
def test_each_listed_point_really_gives_the_all_zero_secret(raw: bytes) -> None:
    """OpenSSL refuses the exchange (all-zero output): the list is right, not just a list."""
    with pytest.raises(ValueError):
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))


def test_the_table_matches_libsodium_in_full() -> None:
    assert set(LOW_ORDER) == keys.LOW_ORDER_POINTS
    assert len(keys.LOW_ORDER_POINTS) == 14


def test_real_keys_pass_and_come_back_unchanged() -> None:
    for _ in range(50):
        public = keys.generate_wg_keypair().public_key
        assert keys.check_wg_public_key(public) == public


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("not base64!", "base64"),
        (b64(b"\x01" * 31), "32 bytes"),
        (b64(b"\x01" * 33), "32 bytes"),
        ("", "32 bytes"),
    ],
)
def test_malformed_keys_say_what_is_wrong(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        keys.check_wg_public_key(value)
