"""The one SCIM error type (RFC 7644 §3.12) and its JSON body."""

from __future__ import annotations

import reprlib
from enum import StrEnum
from typing import Any

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class Reason(StrEnum):
    """Why a request was refused, where the fix is outside the request (a setting, a team, a user to
    provision first): the provisioning log keeps it, and the console explains it in the organization's
    words with the page to fix it on (web/console/refusals.py). The IdP reads the `detail`."""

    DOMAIN_NOT_ALLOWED = "domain_not_allowed"
    NO_TEAM = "no_team"
    TEAM_TAKEN = "team_taken"
    UNKNOWN_MEMBER = "unknown_member"
    UNKNOWN_MANAGER = "unknown_manager"
    SCIM_DISABLED = "scim_disabled"
    RATE_LIMITED = "rate_limited"


class ScimError(Exception):
    """An error answered as an RFC 7644 §3.12 body; `scim_type` only where the RFC defines one."""

    def __init__(
        self,
        status: int,
        detail: str,
        scim_type: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        reason: Reason | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.headers = dict(headers or {})  # e.g. Retry-After and rate-limit headers
        self.reason = reason

    def body(self) -> dict[str, Any]:
        """The error as a SCIM message body."""
        return error_body(self.status, self.detail, self.scim_type)


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80


def shown(value: Any) -> str:
    """A value a client sent, for an error's detail: its repr, cut short in depth and length.

    A plain repr of a JSON value nested a thousand levels deep raises RecursionError (a 500); this never
    goes deeper than three levels.
    """
    return _SHOWN.repr(value)


def error_body(status: int, detail: str, scim_type: str | None = None) -> dict[str, Any]:
    """An RFC 7644 §3.12 error body; `status` is a string, as the RFC requires."""
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return body


DATABASE_RETRY_AFTER = "5"  # seconds: a restart or fail-over of PostgreSQL usually takes about this long


def database_unavailable() -> ScimError:
    """503 with Retry-After: the database cannot be reached for now; the client should retry later."""
    return ScimError(
        503,
        "the service cannot reach its database right now; nothing was saved unless a read shows it: "
        f"retry after {DATABASE_RETRY_AFTER} s",
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


def invalid_filter(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidFilter")


def invalid_value(detail: str, *, reason: Reason | None = None) -> ScimError:
    return ScimError(400, detail, "invalidValue", reason=reason)


def invalid_syntax(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidSyntax")


def invalid_path(detail: str) -> ScimError:
    return ScimError(400, detail, "invalidPath")


def no_target(detail: str) -> ScimError:
    return ScimError(400, detail, "noTarget")


def mutability(detail: str) -> ScimError:
    return ScimError(400, detail, "mutability")


def uniqueness(detail: str, *, reason: Reason | None = None) -> ScimError:
    return ScimError(409, detail, "uniqueness", reason=reason)


def not_found(detail: str) -> ScimError:
    return ScimError(404, detail)
