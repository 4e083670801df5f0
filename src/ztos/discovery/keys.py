"""TSIG key management: make keys, check them, turn them into keyrings.

Every ZTOS TSIG key is HMAC-SHA256 with a 256-bit random secret, the same
thing ``tsig-keygen -a hmac-sha256`` makes, so one key text works for the
embedded server, BIND and dnspython. Secrets travel as base64 text (as in
BIND's ``secret "..."``); callers store them with the rest of a node's
credentials and never log them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import struct
from collections.abc import Mapping

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

from ztos.discovery import names
from ztos.errors import InvalidInput

ALGORITHM = dns.tsig.HMAC_SHA256
SECRET_BYTES = 32
MIN_SECRET_BYTES = 16

Keyring = dict[dns.name.Name, dns.tsig.Key]


def new_tsig_key(name: str | dns.name.Name) -> tuple[str, str]:
    """A fresh HMAC-SHA256 key: ``(absolute key name, base64 secret)``."""
    key_name = names.as_name(name)
    return key_name.to_text(), base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def decode_secret(secret: str) -> bytes:
    """The raw secret; ``InvalidInput`` when it is not base64 or too short to be safe."""
    try:
        raw = base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("TSIG secret must be base64 text (as tsig-keygen prints it)") from exc
    if len(raw) < MIN_SECRET_BYTES:
        raise InvalidInput(f"TSIG secret must be at least {MIN_SECRET_BYTES} bytes; use new_tsig_key()")
    return raw


def tsig_key(name: str | dns.name.Name, secret: str) -> dns.tsig.Key:
    return dns.tsig.Key(names.as_name(name), decode_secret(secret), ALGORITHM)


def keyring(keys: Mapping[str, str] | Mapping[dns.name.Name, str] | Keyring) -> Keyring:
    """``{name: base64 secret}`` (or an existing keyring) to the dnspython keyring servers use."""
    return {
        names.as_name(name): secret if isinstance(secret, dns.tsig.Key) else tsig_key(name, secret)
        for name, secret in keys.items()
    }


def sign_at(message: dns.message.Message, key: dns.tsig.Key, when: int, fudge: int = 300) -> bytes:
    """``message`` (not yet signed) in wire form with a TSIG made at time ``when``.

    dnspython always signs with the current time; this makes the signing time
    explicit, for clients that know their clock offset and for tests that need
    an old (replayed or skewed) request.
    """
    unsigned = message.to_wire()
    template = dns.rdtypes.ANY.TSIG.TSIG(  # type: ignore[no-untyped-call]
        dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm, when, fudge, b"", message.id, 0, b""
    )
    signed, _ = dns.tsig.sign(unsigned, key, template, time=when)  # type: ignore[no-untyped-call]
    rdata: bytes = signed.to_wire()
    owner: bytes = key.name.to_wire()  # type: ignore[assignment]
    record = owner + struct.pack("!HHIH", dns.rdatatype.TSIG, dns.rdataclass.ANY, 0, len(rdata))
    (arcount,) = struct.unpack("!H", unsigned[10:12])
    return unsigned[:10] + struct.pack("!H", arcount + 1) + unsigned[12:] + record + rdata
