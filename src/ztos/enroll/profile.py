"""The enrolment profile: everything a fresh host needs, in one YAML file.

An admin (or an iPXE boot script) hands it to a host. The controller signs
the profile with the CA key, so the host can detect tampering once it has
fetched the CA certificate and checked it against the pinned fingerprint.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ztos.errors import InvalidInput
from ztos.model import Attributes, Name, Role

PROFILE_VERSION = 1


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ztos_profile: int = Field(PROFILE_VERSION, ge=1, le=PROFILE_VERSION)
    network: str
    controllers: list[str] = Field(default_factory=list)
    domain: str | None = None  # find controllers by _ztos-api._tcp.<domain> SRV when no URLs
    resolver: str | None = None  # ADDRESS:PORT of the network's DNS server
    ca_fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    token: str = Field(min_length=10)
    node_name: Name
    role: Role = Role.NODE
    tenants: list[Name] = Field(default_factory=list)
    attributes: Attributes = Field(default_factory=dict)
    signature: str = ""

    @model_validator(mode="after")
    def _reachable(self) -> Profile:
        if not self.controllers and not (self.domain and self.resolver):
            raise ValueError("a profile needs controller URLs, or a domain and resolver to find them")
        return self

    def signed_bytes(self) -> bytes:
        """The canonical bytes the CA signs: every field except the signature."""
        body = self.model_dump(mode="json", exclude={"signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def signature_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.signature, validate=True)
        except ValueError as exc:
            raise InvalidInput("profile signature is not base64: the profile was altered") from exc


def format_validation_error(source: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        problems.append(f"{where}: {error['msg']}")
    return f"{source}: " + "; ".join(problems)


def parse_profile(text: str, source: str = "profile") -> Profile:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source} is not valid YAML (truncated?): {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} must be a YAML mapping of profile fields")
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(format_validation_error(source, exc)) from exc


def load_profile(path: Path) -> Profile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read profile {path}: {exc.strerror}") from exc
    return parse_profile(text, str(path))


def dump_profile(profile: Profile) -> str:
    header = "# ZTOS enrolment profile: contains a single-use secret, keep it private.\n"
    return header + yaml.safe_dump(profile.model_dump(mode="json"), sort_keys=False)
