from datetime import UTC, datetime, timedelta

import pytest

from ztos.enroll import tokens
from ztos.errors import InvalidInput, TokenRefused
from ztos.model import Token

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def make(parts: tokens.ParsedToken, **changes: object) -> Token:
    fields = {
        "id": parts.id,
        "secret_sha256": tokens.hash_secret(parts.secret),
        "node_name": "host1",
        "created_by": "admin:admin",
        "expires_at": NOW + timedelta(hours=1),
    }
    fields.update(changes)
    return Token.model_validate(fields)


def test_round_trip_and_hash_only_storage() -> None:
    parts = tokens.new_token_parts()
    text = tokens.format_token(parts)
    assert tokens.parse_token(text) == parts
    assert parts.secret not in make(parts).model_dump_json()


@pytest.mark.parametrize("text", ["", "zt1..x", "zt2.a.b", "zt1.a", "hello"])
def test_malformed_token_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput, match="malformed"):
        tokens.parse_token(text)


def test_valid_token_accepted() -> None:
    parts = tokens.new_token_parts()
    assert tokens.check_token(make(parts), parts, "host1", NOW).id == parts.id


@pytest.mark.parametrize(
    ("changes", "name", "code", "message"),
    [
        ({"used_at": NOW}, "host1", "token_used", "already used"),
        ({"expires_at": NOW}, "host1", "token_expired", "expired"),
        ({}, "host2", "token_wrong_name", "bound to node name 'host1'"),
    ],
)
def test_refusals_say_why(changes: dict[str, object], name: str, code: str, message: str) -> None:
    parts = tokens.new_token_parts()
    with pytest.raises(TokenRefused, match=message) as info:
        tokens.check_token(make(parts, **changes), parts, name, NOW)
    assert info.value.code == code


def test_wrong_secret_and_unknown_token_are_refused() -> None:
    parts = tokens.new_token_parts()
    forged = tokens.ParsedToken(parts.id, "not-the-secret")
    for token in (make(parts), None):
        with pytest.raises(TokenRefused, match="not recognised"):
            tokens.check_token(token, forged, "host1", NOW)
