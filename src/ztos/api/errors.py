"""Every API error is JSON ``{"error": code, "detail": text}`` with the right status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ztos.errors import ZtosError

log = logging.getLogger("ztos.api")

HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def error_response(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def describe_validation(exc: RequestValidationError) -> tuple[int, str, str]:
    """400 for a malformed body or query string (a bad request line), 422 for a body
    field that fails validation."""
    problems = []
    in_query = True
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return 400, "malformed_json", f"request body is not valid JSON: {error.get('msg')}"
        loc = tuple(error.get("loc", ()))
        in_query = in_query and loc[:1] == ("query",)
        problems.append(f"{'.'.join(str(part) for part in loc)}: {error.get('msg')}")
    return 400 if problems and in_query else 422, "invalid_input", "; ".join(problems) or "invalid request"


def install(app: FastAPI) -> None:
    @app.exception_handler(ZtosError)
    async def ztos_error(_: Request, exc: ZtosError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(*describe_validation(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal", "internal error; see the controller log")
