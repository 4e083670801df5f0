"""Builds the controller's FastAPI application around a ``Controller``."""

from __future__ import annotations

from fastapi import FastAPI

from ztos import __version__
from ztos.api import auth, errors
from ztos.api.limits import BodySizeLimit
from ztos.api.routes import (
    dns,
    identity,
    mesh,
    monitoring,
    nodes,
    people,
    policies,
    security,
    session,
    tenants,
    watch,
    web,
)
from ztos.controller import Controller


def create_app(controller: Controller) -> FastAPI:
    app = FastAPI(
        title="ZTOS controller",
        version=__version__,
        description="Zero Trust Overlay System controller API. "
        "Every route but /api/v1/enroll, /api/v1/ca and /api/v1/session/exchange needs a client "
        "certificate issued by the network's CA, or a bearer token from POST /api/v1/session "
        "(see x-ztos-auth and x-ztos-roles on each operation).",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.controller = controller
    errors.install(app)
    modules = (dns, identity, mesh, monitoring, nodes, people, policies, security, session, tenants, watch)
    for module in (*modules, web):
        app.include_router(module.router)

    @app.get("/api/v1/healthz", tags=["monitoring"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    auth.install(app, controller)
    app.add_middleware(BodySizeLimit)
    return app
