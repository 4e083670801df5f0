"""Bootstrap tokens: random, shown once, stored only as a SHA-256 hash.

A token string is ``zt1.<id>.<secret>``. The id finds the stored record (so a
refusal can say *why*: used, expired, bound to another name) and the secret
proves possession. The secret has 256 bits of entropy, so a plain SHA-256 is
the right hash: a slow password hash adds nothing against brute force here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from ztos.errors import InvalidInput, TokenRefused
from ztos.model import Token

PREFIX = "zt1"


@dataclass(frozen=True)
class ParsedToken:
    id: str
    secret: str


def new_token_parts() -> ParsedToken:
    return ParsedToken(id=secrets.token_urlsafe(9), secret=secrets.token_urlsafe(32))


def format_token(parts: ParsedToken) -> str:
    return f"{PREFIX}.{parts.id}.{parts.secret}"


def parse_token(text: str) -> ParsedToken:
    pieces = text.strip().split(".")
    if len(pieces) != 3 or pieces[0] != PREFIX or not pieces[1] or not pieces[2]:
        raise InvalidInput("bootstrap token is malformed: expected 'zt1.<id>.<secret>'")
    return ParsedToken(id=pieces[1], secret=pieces[2])


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_token(token: Token | None, parts: ParsedToken, node_name: str, now: datetime) -> Token:
    """Return the token if it may enrol ``node_name`` now, else raise ``TokenRefused``."""
    if token is None or not hmac.compare_digest(token.secret_sha256, hash_secret(parts.secret)):
        raise TokenRefused(f"bootstrap token {parts.id} is not recognised", code="token_unknown")
    if token.revoked_at is not None:
        raise TokenRefused(
            f"bootstrap token {parts.id} was revoked at {token.revoked_at.isoformat()}: ask for a new one",
            code="token_revoked",
        )
    if token.used_at is not None:
        raise TokenRefused(
            f"bootstrap token {parts.id} was already used at {token.used_at.isoformat()}; "
            "tokens are single-use: create a new one",
            code="token_used",
        )
    if now >= token.expires_at:
        raise TokenRefused(
            f"bootstrap token {parts.id} expired at {token.expires_at.isoformat()}",
            code="token_expired",
        )
    if token.node_name != node_name:
        raise TokenRefused(
            f"bootstrap token {parts.id} is bound to node name {token.node_name!r}, not {node_name!r}",
            code="token_wrong_name",
        )
    return token
