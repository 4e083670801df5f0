"""One write owner: the API's routes go through the controller's service layer.

A route that reached the store itself could write without the audit event, the
checks and the wake-up the service layer gives every write; this test reads
the API's source so such a route cannot come back unnoticed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ztos.api

FORBIDDEN = {"store", "transaction", "audit_events"}  # the store, its transactions, its raw log


def test_no_api_module_touches_the_store_or_opens_a_transaction() -> None:
    root = Path(ztos.api.__file__).parent
    found = [
        f"{path.relative_to(root)}:{node.lineno}: .{node.attr}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN
    ]
    assert found == [], "routes must call the controller's service layer: " + ", ".join(found)
