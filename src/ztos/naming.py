"""The name and key rules of ZTOS, in one place (model, policy, API, CLI, dataplane).

A name becomes a URL path segment, a directory key, a DNS label and part of
kernel interface and namespace names, so it must be exactly what it looks
like. Every rule here is applied with ``fullmatch`` over ASCII-only classes:
``re.match`` with a trailing ``$`` also accepts a final newline (``"web\\n"``),
and ``\\d`` / ``\\w`` would accept non-ASCII digits and letters.
"""

from __future__ import annotations

import re
from urllib.parse import quote

NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
ATTR_KEY_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}", re.ASCII)
TAG_RE = re.compile(r"[a-z0-9]([a-z0-9_.-]{0,62}[a-z0-9])?", re.ASCII)
NETNS_RE = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)
TOKEN_ID_RE = re.compile(r"[A-Za-z0-9_-]{8,32}", re.ASCII)
IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9._-]{8,128}", re.ASCII)
IDEMPOTENCY_HEADER = "Idempotency-Key"  # a random id per write, kept by the client across retries
NETNS_MAX = 64  # what an API client may name; ZTOS's own namespaces may be longer (prefixes)


def is_name(value: str) -> bool:
    """A node, tenant, workload, user, group or rule name: a DNS label."""
    return NAME_RE.fullmatch(value) is not None


def check_name(value: str) -> str:
    if not is_name(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return value


def is_attr_key(value: str) -> bool:
    return ATTR_KEY_RE.fullmatch(value) is not None


def is_tag(value: str) -> bool:
    return TAG_RE.fullmatch(value) is not None


def is_token_id(value: str) -> bool:
    return TOKEN_ID_RE.fullmatch(value) is not None


def check_token_id(value: str) -> str:
    if not is_token_id(value):
        raise ValueError(f"{value!r} is not a token id: 8-32 of A-Z a-z 0-9 _ - (see 'ztos token list')")
    return value


def is_netns(value: str, limit: int = NETNS_MAX) -> bool:
    """A single path component of /run/netns: never ``.``, ``..``, a path or empty."""
    return len(value) <= limit and value not in (".", "..") and NETNS_RE.fullmatch(value) is not None


def netns_problem(value: str, limit: int = NETNS_MAX) -> str:
    return (
        f"network namespace {value!r} must be 1-{limit} of A-Z a-z 0-9 _ . - "
        "(one entry of /run/netns, not '.' or '..')"
    )


def check_netns(value: str) -> str:
    if not is_netns(value):
        raise ValueError(netns_problem(value))
    return value


def path_segment(value: str) -> str:
    """Quote one URL path segment so '/' and '%' in it cannot change the route.

    Quoting leaves '.' alone and HTTP clients resolve dot segments, so an
    empty, '.' or '..' segment is refused rather than sent.
    """
    if value in ("", ".", ".."):
        raise ValueError(f"{value!r} cannot be a URL path segment")
    return quote(value, safe="")


__all__ = [
    "ATTR_KEY_RE",
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_KEY_RE",
    "NAME_RE",
    "NETNS_MAX",
    "TAG_RE",
    "TOKEN_ID_RE",
    "check_name",
    "check_netns",
    "check_token_id",
    "is_attr_key",
    "is_name",
    "is_netns",
    "is_tag",
    "is_token_id",
    "netns_problem",
    "path_segment",
]
