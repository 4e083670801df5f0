"""WireGuard (Curve25519) key pairs, generated on the host that uses them.

WireGuard keys are raw X25519 keys, base64 encoded; ``cryptography`` gives
them without shelling out to ``wg genkey``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
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


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
