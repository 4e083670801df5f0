"""Browser login codes and ended sessions, shared by every controller replica.

Both live in the store's shared state (``Store.put_state``), not in one
process's memory, so a login code made at controller A is redeemed at B and a
session logged out at A is refused by B. Only hashes are stored: a copy of the
directory hands nobody a usable code. A code is taken with ``take_state``, one
atomic step, so of two replicas redeeming the same code exactly one succeeds.
Session tokens themselves stay stateless (HMAC, ``ztos.api.auth``); only their
end is recorded, until the token would have expired anyway.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ztos.directory import Store
from ztos.errors import Unauthenticated
from ztos.model import Role
from ztos.pki import Identity

LOGIN_CODE_SCOPE = "session.login_code"
ENDED_SCOPE = "session.ended"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class LoginCode:
    claims_for: Identity  # the session identity the code turns into
    not_after: datetime  # the creator's certificate expiry
    expires: float


@dataclass
class LoginCodes:
    """Single-use codes an admin hands to a browser (``ztos security login-link``)."""

    store: Store
    clock: Callable[[], float] = time.time

    def create(self, identity: Identity, not_after: datetime, ttl: int) -> tuple[str, float]:
        code, now = secrets.token_urlsafe(24), self.clock()
        entry = {
            "name": identity.name,
            "role": identity.role.value,
            "serial": identity.serial,
            "not_after": not_after.isoformat(),
            "expires": now + ttl,
        }
        with self.store.transaction() as tx:
            tx.put_state(LOGIN_CODE_SCOPE, digest(code), entry, now, ttl)
        return code, now + ttl

    def redeem(self, code: str) -> LoginCode:
        """The code's claims, once: a second redeem, at any replica, is refused."""
        with self.store.transaction() as tx:
            entry = tx.take_state(LOGIN_CODE_SCOPE, digest(code), self.clock())
        if entry is None:
            raise Unauthenticated(
                "login code unknown, already used or expired: ask an admin for a new "
                "'ztos security login-link'",
                code="login_code_refused",
            )
        identity = Identity(name=entry["name"], role=Role(entry["role"]), serial=entry["serial"])
        return LoginCode(identity, datetime.fromisoformat(entry["not_after"]), float(entry["expires"]))


@dataclass
class EndedSessions:
    """Sessions logged out before their expiry, remembered until that expiry."""

    store: Store
    clock: Callable[[], float] = time.time

    def end(self, token_id: str, expires: int) -> None:
        now = self.clock()
        with self.store.transaction() as tx:
            tx.put_state(ENDED_SCOPE, digest(token_id), {}, now, max(1.0, expires - now))

    def ended(self, token_id: str) -> bool:
        return self.store.get_state(ENDED_SCOPE, digest(token_id), self.clock()) is not None
