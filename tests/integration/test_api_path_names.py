"""The API refuses a URL path segment that is not a valid name (a real controller).

``DELETE /api/v1/tenants/web%0A`` used to reach the tenant code with ``"web\\n"``;
every route that takes a name in its path must answer 422 with the JSON error
body, whatever the client sends, and change nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness import RunningController, admin_client
from ztos import errors

SEGMENTS = ["web%0A", "web%00", "%D0%B0lice", "%EF%BD%81lice", "WEB", "-web"]
ROUTES: list[tuple[str, str, Any]] = [
    ("DELETE", "/api/v1/tenants/{}", None),
    ("POST", "/api/v1/tenants/{}/attach", {"node": "h1"}),
    ("POST", "/api/v1/tenants/{}/detach", {"node": "h1"}),
    ("DELETE", "/api/v1/workloads/{}", None),
    ("GET", "/api/v1/nodes/{}", None),
    ("POST", "/api/v1/nodes/{}/revoke", {"reason": "test"}),
    ("DELETE", "/api/v1/nodes/{}", None),
    ("PUT", "/api/v1/nodes/{}/attributes", {"attributes": {"location": "lab"}}),
    ("GET", "/api/v1/users/{}", None),
    ("POST", "/api/v1/users/{}/revoke", {"reason": "test"}),
]


def test_a_path_segment_that_is_not_a_name_is_refused(controller: RunningController) -> None:
    client = admin_client(controller)
    try:
        client.request("POST", "/api/v1/tenants", json={"name": "web"})
        answered = {}
        for method, route, body in ROUTES:
            for segment in SEGMENTS:
                path = route.format(segment)
                try:
                    client.request(method, path, json=body)
                except errors.ZtosError as exc:
                    answered[f"{method} {path}"] = (type(exc).__name__, exc.code)
                else:
                    answered[f"{method} {path}"] = ("accepted", "")
        refused = ("InvalidInput", "invalid_input")
        assert {key: value for key, value in answered.items() if value != refused} == {}
        tenants = client.request("GET", "/api/v1/tenants")
        assert [tenant["name"] for tenant in tenants] == ["web"]
    finally:
        client.close()


@pytest.mark.parametrize("segment", ["web%0A", "web%00"])
def test_trailing_newline_or_nul_never_addresses_the_real_record(
    controller: RunningController, segment: str
) -> None:
    """``web%0A`` must not delete ``web`` (nor a record named ``web\\n``)."""
    client = admin_client(controller)
    try:
        client.request("POST", "/api/v1/tenants", json={"name": "web"})
        with pytest.raises(errors.InvalidInput):
            client.request("DELETE", f"/api/v1/tenants/{segment}")
        assert [tenant["name"] for tenant in client.request("GET", "/api/v1/tenants")] == ["web"]
    finally:
        client.close()
