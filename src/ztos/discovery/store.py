"""Where the embedded server keeps its zone between restarts.

``ZoneStore`` is deliberately tiny, a list of master-file lines in and out,
so back ends stay trivial: ``JsonZoneStore`` writes one JSON file (atomically:
temporary file, fsync, rename, so a crash leaves the old or the new zone,
never half of one); a directory-backed store can implement the same two
methods. The server calls ``save`` after every accepted update and before the
change is served, so an acknowledged update survives a restart.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ztos.discovery.zone import Zone
from ztos.errors import DirectoryError

FORMAT = "ztos-zone/1"


class ZoneStore(Protocol):
    def load(self) -> list[str] | None:
        """The stored RR lines, or ``None`` when nothing was stored yet."""
        ...

    def save(self, records: Sequence[str]) -> None:
        """Replace the stored zone with these RR lines, atomically."""
        ...


class JsonZoneStore:
    """``{"format": "ztos-zone/1", "records": [...]}`` in one file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[str] | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DirectoryError(f"zone store {self.path} is unreadable: {exc}") from exc
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("records"), list)
        ):
            raise DirectoryError(f"zone store {self.path} is not a {FORMAT} file")
        return [str(line) for line in data["records"]]

    def save(self, records: Sequence[str]) -> None:
        body = json.dumps({"format": FORMAT, "records": list(records)}, indent=1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(body)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_zone(store: ZoneStore, initial: Zone) -> Zone:
    """The stored zone if there is one (it must be for the same origin), else ``initial``."""
    texts = store.load()
    return initial if texts is None else Zone.from_texts(initial.origin, texts)


def save_zone(store: ZoneStore, zone: Zone) -> None:
    store.save(zone.to_texts())
