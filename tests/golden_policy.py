"""The golden finance policy and its directory snapshot, shared by the policy unit tests."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from ztos.policy import Snapshot, load_policy_file

GOLDEN = Path(__file__).resolve().parent / "golden" / "policy"
POLICY = load_policy_file(GOLDEN / "finance.yaml")
SNAPSHOT = Snapshot.from_data(json.loads((GOLDEN / "snapshot.json").read_text()))
NOW = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)  # a Monday noon: inside the golden time windows
