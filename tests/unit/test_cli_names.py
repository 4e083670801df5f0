"""The CLI refuses a bad name before it sends anything.

``ztos tenant delete ../nodes/victim`` used to become
``DELETE /api/v1/tenants/../nodes/victim`` and delete node ``victim``. Every
verb that takes a name must refuse such a name with one line and a non-zero
exit, and make no request at all (the client here records what it is asked).
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from ztos.cli import main as cli
from ztos.cli.context import CliState


class RecordingClient:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **_: Any) -> Any:
        self.requests.append((method, path))
        return None


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingClient:
    client = RecordingClient()
    monkeypatch.setattr(CliState, "client", lambda self: client)
    return client


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["ztos", *argv])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    code = exited.value.code
    return code if isinstance(code, int) else 1, capsys.readouterr().err


BAD = ["../nodes/victim", "x/../victim", "web\n", "..", "blue%2F..", "\u0430lice"]
VERBS = [
    ["tenant", "delete", "{}"],
    ["tenant", "create", "{}"],
    ["tenant", "attach", "{}", "--node", "h1"],
    ["tenant", "attach", "blue", "--node", "{}"],
    ["tenant", "detach", "{}", "--node", "h1"],
    ["workload", "remove", "{}"],
    ["workload", "add", "{}", "--node", "h1", "--name", "db"],
    ["workload", "add", "blue", "--node", "{}", "--name", "db"],
    ["workload", "add", "blue", "--node", "h1", "--name", "{}"],
    ["workload", "add", "blue", "--node", "h1", "--name", "db", "--owner", "{}"],
    ["workload", "add", "blue", "--node", "h1", "--name", "db", "--tag", "{}"],
    ["node", "show", "{}"],
    ["node", "revoke", "{}"],
    ["node", "set-attr", "{}", "location=lab"],
    ["node", "delete", "{}"],
    ["token", "create", "--name", "{}"],
    ["user", "show", "{}"],
    ["user", "revoke", "{}"],
]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("verb", VERBS, ids=lambda verb: " ".join(w for w in verb if w != "{}"))
def test_a_bad_name_is_refused_before_any_request(
    verb: list[str],
    bad: str,
    recorder: RecordingClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(monkeypatch, capsys, *[bad if word == "{}" else word for word in verb])
    assert code != 0
    assert recorder.requests == []
    assert err.startswith("error: ") and "name" in err, err
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("token_id", ["../../nodes/victim", "abcdefgh/..", "abcdefgh\n", ".."])
def test_a_bad_token_id_is_refused_before_any_request(
    token_id: str,
    recorder: RecordingClient,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = run(monkeypatch, capsys, "token", "revoke", token_id)
    assert code != 0 and recorder.requests == []
    assert err.startswith("error: token id"), err


@pytest.mark.parametrize("netns", ["..", ".", "a/b"])
def test_a_workload_namespace_that_is_a_path_is_refused_before_any_request(
    netns: str, recorder: RecordingClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["workload", "add", "blue", "--node", "h1", "--name", "db", "--netns", netns]
    code, err = run(monkeypatch, capsys, *argv)
    assert code != 0 and recorder.requests == []
    assert "/run/netns" in err, err


def test_a_valid_name_is_sent_as_one_path_segment(
    recorder: RecordingClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["ztos", "tenant", "delete", "blue"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code in (0, None)
    assert recorder.requests == [("DELETE", "/api/v1/tenants/blue")]
