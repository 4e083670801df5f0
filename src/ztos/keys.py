"""WireGuard (Curve25519) key pairs, generated on the host that uses them.

WireGuard keys are raw X25519 keys, base64 encoded; ``cryptography`` gives
them without shelling out to ``wg genkey``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)


@dataclass(frozen=True)
class WgKeyPair:
    private_key: str
    public_key: str


def generate_wg_keypair() -> WgKeyPair:
    private = X25519PrivateKey.generate()
    return WgKeyPair(
        private_key=_b64(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())),
        public_key=_b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
    )


def wg_public_key(private_key: str) -> str:
    private = X25519PrivateKey.from_private_bytes(base64.b64decode(private_key))
    return _b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


_P = 2**255 - 19
# The u-coordinates of Curve25519's points of small order (1, 2, 4 and 8), as
# libsodium's blocklist has them: 0, 1, the two order-8 points, and the
# non-canonical p-1, p and p+1. A shared secret with any of them is all zero
# whatever the private key, so a peer "with" such a key is no peer at all.
_LOW_ORDER_U = (
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    _P - 1,
    _P,
    _P + 1,
)
# X25519 ignores the top bit of the encoding, so each point has a twin with it set.
LOW_ORDER_POINTS = frozenset((u | top).to_bytes(32, "little") for u in _LOW_ORDER_U for top in (0, 1 << 255))


def is_low_order(raw: bytes) -> bool:
    """Whether ``raw`` is a small-order point: a DH with it yields the all-zero secret.

    The blocklist decides; OpenSSL's own all-zero check is asked too, so a point
    missing from the list could not slip through.
    """
    if raw in LOW_ORDER_POINTS:
        return True
    try:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))
    except ValueError:  # OpenSSL refuses an all-zero shared secret
        return True
    return False


def decode_wg_public_key(value: str) -> bytes:
    """The 32 bytes of a base64 WireGuard key; ``ValueError`` names what is wrong."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("WireGuard key must be base64") from exc
    if len(raw) != 32:
        raise ValueError(f"WireGuard key must be 32 bytes, got {len(raw)}")
    return raw


def check_wg_public_key(value: str) -> str:
    """A WireGuard public key as a host may offer it: base64 of 32 bytes, not low order.

    Every request that hands the controller a key passes through here; raises
    ``ValueError`` (pydantic turns it into a field error) naming what is wrong.
    """
    if is_low_order(decode_wg_public_key(value)):
        raise ValueError("WireGuard key is a low-order Curve25519 point (no secret key has it); refused")
    return value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
