"""The zero-trust policy: apply, show, diff, test, rollback; node attributes and posture."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ztos.api.auth import ADMIN, NODES, READERS, controller_of, requires
from ztos.controller import actor_of
from ztos.controller import policies as ops
from ztos.model import Name, Node
from ztos.pki import Identity

router = APIRouter(prefix="/api/v1", tags=["policy"])
Admin = Annotated[Identity, Depends(requires(ADMIN))]
Reader = Annotated[Identity, Depends(requires(READERS))]


class Attributes(BaseModel):
    """Attribute changes: a value sets, ``null`` removes."""

    model_config = ConfigDict(extra="forbid")
    attributes: dict[str, str | None] = Field(max_length=64)


@router.get("/policies", response_model=ops.PolicyView)
def show(request: Request, _: Reader) -> ops.PolicyView:
    """The policy in force."""
    return controller_of(request).policy.current()


@router.get("/policies/state", response_model=ops.PolicyState)
def policy_state(request: Request, _: Reader) -> ops.PolicyState:
    """Open (no policy yet), default deny (no policy, closed), or a policy revision in force."""
    return controller_of(request).policy.state()


@router.post("/policies", response_model=ops.PolicyView, status_code=201)
def apply(body: ops.PolicyText, request: Request, who: Admin) -> ops.PolicyView:
    """Validate and apply a policy (YAML text); refused whole, with every error, if invalid."""
    return controller_of(request).policy.apply(actor_of(who), body)


@router.get("/policies/history", response_model=list[ops.PolicyView])
def history(request: Request, _: Reader) -> list[ops.PolicyView]:
    return controller_of(request).policy.history()


@router.post("/policies/diff", response_model=ops.PolicyChanges)
def diff(body: ops.PolicyText, request: Request, _: Reader) -> ops.PolicyChanges:
    """What applying this text would change (nothing is stored)."""
    return controller_of(request).policy.diff(body)


@router.post("/policies/rollback", response_model=ops.PolicyView, status_code=201)
def rollback(body: ops.RollbackRequest, request: Request, who: Admin) -> ops.PolicyView:
    """Apply an earlier revision again, as a new revision."""
    return controller_of(request).policy.rollback(actor_of(who), body)


@router.post("/policies/test", response_model=ops.PolicyDecision)
def test(body: ops.PolicyTestRequest, request: Request, _: Reader) -> ops.PolicyDecision:
    """Would ``from`` reach ``to`` on ``port``? Which rule decides, and why."""
    return controller_of(request).policy.test(body)


@router.put("/nodes/{name}/attributes", response_model=Node)
def set_attributes(name: Name, body: Attributes, request: Request, who: Admin) -> Node:
    """Set or remove a node's attributes (``admin.*`` verdicts, location, risk score); takes
    effect at once. ``posture.*`` is the host's own report and refused here (400)."""
    return controller_of(request).set_node_attributes(actor_of(who), name, body.attributes)


@router.put("/nodes/self/posture", response_model=Node)
def posture(body: Attributes, request: Request, who: Annotated[Identity, Depends(requires(NODES))]) -> Node:
    """An agent's posture checks, stored as ``posture.*`` when they change; a key naming an
    ``admin.*`` decision or ``posture.stale`` is refused (403) and nothing is written."""
    return controller_of(request).report_posture(who.name, body.attributes)
