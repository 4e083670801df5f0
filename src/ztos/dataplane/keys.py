"""WireGuard key handling: generate, derive, store and convert (the ``cryptography`` adapter).

Private keys are generated on the host and never leave it (DESIGN.md), so the
data plane only ever passes a *path* to the key around; the key itself is read
at the moment it is handed to WireGuard and is never put in a dataclass that
could end up in a log or a printed plan. ``wg`` speaks base64, the UAPI speaks
hex: both conversions live here.
"""

from __future__ import annotations

import base64
import os
import stat
import tempfile
from pathlib import Path

from ztos import keys
from ztos.errors import InvalidInput
from ztos.keys import generate_wg_keypair, wg_public_key


def generate_keypair() -> tuple[str, str]:
    """A fresh X25519 key pair as ``(private_b64, public_b64)`` (``ztos.keys`` generates it)."""
    pair = generate_wg_keypair()
    return pair.private_key, pair.public_key


def public_key_of(private_b64: str) -> str:
    """The base64 public key of a base64 private key (checked here, derived by ``ztos.keys``)."""
    _decode(private_b64)
    return wg_public_key(private_b64)


def write_private_key(path: str | Path, private_b64: str) -> None:
    """Write a key file with mode 0600 atomically (no moment where it is readable)."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(private_b64 + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_private_key(path: str | Path) -> str:
    """Read a key file, refusing one that other users can read."""
    target = Path(path)
    try:
        mode = target.stat().st_mode
        text = target.read_text().strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read private key {target}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(
            f"private key {target} is readable by other users (mode {mode & 0o777:o}); "
            f"run: chmod 600 {target}"
        )
    _decode(text)
    return text


def b64_to_hex(value: str) -> str:
    return _decode(value).hex()


def hex_to_b64(value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise InvalidInput(f"WireGuard key {value!r} is not hex") from exc
    return base64.b64encode(raw).decode()


def _decode(value: str) -> bytes:
    try:
        return keys.decode_wg_public_key(value)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
