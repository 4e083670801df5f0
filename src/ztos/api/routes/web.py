"""The web dashboard: ``/`` serves its page, ``/ui/...`` its built files.

The files are static and hold no secret, so these routes need no identity;
every API call the page makes is authenticated like any other (a bearer token
from a one-time login code or from the browser's client certificate). The
page is served with a strict Content-Security-Policy: scripts, styles and
connections only from this controller, nothing from a CDN, no framing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from ztos import web
from ztos.errors import NotFound, Unreachable

router = APIRouter(tags=["web"], include_in_schema=False)

SECURITY_HEADERS = {
    # style-src 'unsafe-inline': the chart and graph libraries write style attributes (the e2e
    # test sees a violation without it); scripts stay 'self' only, never inline.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a login link's code must not leak to other sites
    "X-Frame-Options": "DENY",
}


def _send(relative: str, accept_encoding: str | None) -> Response:
    if not web.is_built():
        raise Unreachable(
            f"the dashboard is not built into this installation ({web.STATIC_DIR} has no "
            f"{web.INDEX}): run 'make web' in the source tree, or use the ztos CLI"
        )
    path = web.resolve(relative)
    if path is None:
        raise NotFound(f"no dashboard file /ui/{relative}")
    asset = web.load(path, "gzip" in (accept_encoding or "").lower())
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = "public, max-age=31536000, immutable" if asset.immutable else "no-cache"
    headers["Vary"] = "Accept-Encoding"
    if asset.encoding:
        headers["Content-Encoding"] = asset.encoding
    return Response(asset.body, media_type=asset.media_type, headers=headers)


AcceptEncoding = Annotated[str | None, Header()]


@router.api_route("/", methods=["GET", "HEAD"])
def dashboard(accept_encoding: AcceptEncoding = None) -> Response:
    return _send(web.INDEX, accept_encoding)


@router.api_route("/ui", methods=["GET", "HEAD"])
@router.api_route("/ui/", methods=["GET", "HEAD"])
def dashboard_ui(accept_encoding: AcceptEncoding = None) -> Response:
    return _send(web.INDEX, accept_encoding)


@router.api_route("/ui/{relative:path}", methods=["GET", "HEAD"])
def dashboard_file(relative: str, accept_encoding: AcceptEncoding = None) -> Response:
    return _send(relative, accept_encoding)
