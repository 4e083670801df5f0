"""The ZTOS exception tree, one place for every error a user can see.

Every error carries a stable machine ``code`` (used in API bodies as
``{"error": code, "detail": text}``), a human ``detail`` that says what is
wrong and how to fix it, and ``retry``: whether trying again later can help.

::

    ZtosError
    ├── InvalidInput          400  bad field, bad file, bad flag
    ├── Unauthenticated       401  no or unusable credentials
    ├── Forbidden             403  identity known but not allowed
    │   └── TokenRefused      403  bootstrap token unknown/used/expired/misbound
    ├── NotFound              404
    ├── Conflict              409  already exists / already enrolled
    ├── DirectoryError        500  the store file is unusable
    │   ├── NotAZtosDirectory      file is not a ZTOS directory
    │   └── SchemaTooNew           written by a newer ZTOS
    ├── PkiError              500  CA or certificate problem
    │   └── FingerprintMismatch    pinned CA does not match the controller
    ├── ToolError             500  an external tool failed (its own text kept)
    └── Unreachable           503  controller or peer cannot be reached (retry)
"""

from __future__ import annotations


class ZtosError(Exception):
    """Base of every error ZTOS raises on purpose."""

    code = "internal"
    status = 500
    retry = False

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code

    def as_body(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


class InvalidInput(ZtosError):
    code = "invalid_input"
    status = 400


class Unauthenticated(ZtosError):
    code = "unauthenticated"
    status = 401


class Forbidden(ZtosError):
    code = "forbidden"
    status = 403


class TokenRefused(Forbidden):
    code = "token_refused"


class NotFound(ZtosError):
    code = "not_found"
    status = 404


class Conflict(ZtosError):
    code = "conflict"
    status = 409


class DirectoryError(ZtosError):
    code = "directory_error"


class NotAZtosDirectory(DirectoryError):
    code = "not_a_ztos_directory"


class SchemaTooNew(DirectoryError):
    code = "schema_too_new"


class PkiError(ZtosError):
    code = "pki_error"


class FingerprintMismatch(PkiError):
    code = "ca_fingerprint_mismatch"
    status = 400


class ToolError(ZtosError):
    """An external tool (ip, wg, nft, ...) failed; ``__cause__`` keeps its error."""

    code = "tool_error"
    retry = True


class Unreachable(ZtosError):
    code = "unreachable"
    status = 503
    retry = True
