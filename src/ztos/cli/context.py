"""CLI state: where the admin identity lives and which controller to talk to.

``$ZTOS_HOME`` (default ``~/.config/ztos``) holds the admin's TLS key and
certificate, the pinned CA and ``config.yaml`` (controller URLs). A global
``--controller URL`` option or ``ZTOS_CONTROLLER`` overrides the URLs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import typer
import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ztos import naming, renewal
from ztos.client import ApiClient
from ztos.enroll.identity_dir import IdentityDir
from ztos.errors import InvalidInput, Unauthenticated, ZtosError

DURATION_RE = re.compile(r"(\d+)([smhd]?)", re.ASCII)
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
console = Console()
err_console = Console(stderr=True)


def ztos_home() -> Path:
    return Path(os.environ.get("ZTOS_HOME", Path.home() / ".config" / "ztos"))


@dataclass
class CliState:
    controller: str | None = None
    home: Path = field(default_factory=ztos_home)

    @property
    def identity(self) -> IdentityDir:
        return IdentityDir(self.home)

    def controller_urls(self) -> list[str]:
        override = self.controller or os.environ.get("ZTOS_CONTROLLER")
        if override:
            return [override]
        config = self.home / "config.yaml"
        if config.exists():
            data = yaml.safe_load(config.read_text()) or {}
            return list(data.get("controllers", []))
        return []

    def client(self) -> ApiClient:
        if not self.identity.is_enrolled():
            raise Unauthenticated(
                f"no admin identity in {self.home}: run 'ztos init' on the controller host or set ZTOS_HOME"
            )
        urls = self.controller_urls()
        if not urls:
            raise InvalidInput("no controller URL: pass --controller URL or set ZTOS_CONTROLLER")
        client = ApiClient.for_identity(urls, self.identity)
        with contextlib.suppress(ZtosError):  # the request itself then reports what is wrong
            renewal.renew_if_due(client, self.identity)  # short-lived operator certs, like agents'
        return client


def state(ctx: typer.Context) -> CliState:
    assert isinstance(ctx.obj, CliState)
    return ctx.obj


def checked_name(value: str, what: str = "name") -> str:
    """Refuse a bad name before any request: it ends up in a URL path, where
    ``../nodes/victim`` would otherwise address another record."""
    if not naming.is_name(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid name: use 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return value


def parse_duration(text: str) -> int:
    """'90', '30s', '15m', '1h', '7d' -> seconds."""
    match = DURATION_RE.fullmatch(text.strip(" "))
    if not match:
        raise InvalidInput(f"duration {text!r} must look like 90s, 15m, 1h or 7d")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def parse_attributes(pairs: list[str]) -> dict[str, str]:
    attributes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"--attr {pair!r} must be KEY=VALUE")
        attributes[key] = value
    return attributes


def to_jsonable(data: Any) -> Any:
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, list):
        return [to_jsonable(item) for item in data]
    return data


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, default=str) + "\n")


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) if cell is not None else "-" for cell in row))
    console.print(table)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
    sys.exit(code)
