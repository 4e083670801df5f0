"""The web dashboard's built files, shipped inside the Python package.

Why a package of its own: the dashboard's source lives in ``web/`` (TypeScript,
built with Vite from ``web/package-lock.json``), and its build output is
committed here under ``static/`` so that a controller installed from a wheel,
or on a machine without network access for npm, serves the dashboard without
any build step and without loading anything from a CDN. ``make web``
rebuilds it.

This module only locates and reads those files (with a small cache of gzip
bodies); ``ztos.api.routes.web`` serves them.
"""

from __future__ import annotations

import gzip
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
COMPRESSIBLE = frozenset({".html", ".js", ".css", ".svg", ".json", ".map", ".txt"})
MIN_GZIP_SIZE = 1024
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


@dataclass(frozen=True)
class Asset:
    """One file ready to send: its bytes (gzip-compressed when ``encoding`` is set)."""

    body: bytes
    media_type: str
    encoding: str | None
    immutable: bool  # content-hashed name: may be cached for ever


def is_built(root: Path | None = None) -> bool:
    return ((root or STATIC_DIR) / INDEX).is_file()


def resolve(relative: str, root: Path | None = None) -> Path | None:
    """The file ``relative`` names inside ``root`` (default: the built dashboard), or
    None: missing, a directory, hidden, or outside ``root`` by ``..``, ``/`` or a symlink."""
    parts = PurePosixPath(relative).parts
    if not parts or any(p in ("..", "/") or p.startswith(".") for p in parts) or "\\" in relative:
        return None
    base = (root or STATIC_DIR).resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def load(path: Path, accept_gzip: bool) -> Asset:
    body, stamp = path.read_bytes(), path.stat().st_mtime_ns
    immutable = path.parent.name == "assets"
    media_type = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if accept_gzip and path.suffix in COMPRESSIBLE and len(body) >= MIN_GZIP_SIZE:
        return Asset(_gzipped(path, stamp), media_type, "gzip", immutable)
    return Asset(body, media_type, None, immutable)


@lru_cache(maxsize=64)
def _gzipped(path: Path, stamp: int) -> bytes:
    """Compressed once per file version (``stamp`` is its mtime: a rebuild is picked up)."""
    return gzip.compress(path.read_bytes(), compresslevel=6, mtime=0)
