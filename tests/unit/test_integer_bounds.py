"""Integers a client sends are bounded before they reach the store or the firewall."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ztos.policy.model import PortSpec


@pytest.mark.parametrize("port", [0, 65536, 2**63, 10**30])
def test_port_fields_are_bounded_like_port_text(port: int) -> None:
    """``{"proto": "tcp", "low": ...}`` is refused where ``tcp/PORT`` text would be."""
    with pytest.raises(ValidationError, match="low"):
        PortSpec.model_validate({"proto": "tcp", "low": port, "high": port})
    with pytest.raises(ValidationError, match="out of range"):
        PortSpec.model_validate(f"tcp/{port}")


def test_ports_in_range_still_round_trip() -> None:
    spec = PortSpec.model_validate({"proto": "udp", "low": 1, "high": 65535})
    assert str(spec) == "udp/1-65535" and PortSpec.model_validate(str(spec)) == spec
