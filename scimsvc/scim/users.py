"""SCIM rules for User writes that need no I/O: validation, the password rule, the kind of change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from marshmallow import ValidationError

from schemas.base import flatten_errors
from schemas.user import ENTERPRISE_SCHEMA, USER_SCHEMA, load_user
from scimsvc.contract import ChangeKind
from scimsvc.scim.attribute_names import key_named
from scimsvc.scim.body_shape import check_schemas
from scimsvc.scim.errors import Reason, invalid_value, mutability

PASSWORD_REFUSED = (
    "password changes are not supported: users sign in through your identity provider, "
    "so scimsvc never stores a password. Remove the password attribute from the request "
    "(in Okta, turn off 'Sync Password')."
)


UNREAD_USER_NAME = "unread@example.com"  # the userName a part of a User is validated with (stored_as_given)


def has_password(body: Mapping[str, Any]) -> bool:
    """Whether a request body carries a password (attribute names are case-insensitive)."""
    return key_named(body, "password") is not None


def validate_user(body: Any, *, refuse_password: bool) -> dict[str, Any]:
    """The stored form of a User body, or a 400 naming every field that is wrong.

    POST ignores a password (RFC 7644 lets a server ignore it); PUT and PATCH refuse one.
    """
    if not isinstance(body, dict):
        raise invalid_value("the request body must be a JSON object describing a User")
    check_schemas(body, USER_SCHEMA, "User")
    if refuse_password and has_password(body):
        raise mutability(PASSWORD_REFUSED)
    try:
        return load_user(body)
    except ValidationError as exc:
        raise invalid_value("invalid User: " + "; ".join(flatten_errors(exc.messages))) from None


def stored_as_given(attributes: dict[str, Any]) -> bool:
    """Whether validation (`load_user`, as validate_user runs it) stores these attributes, a part of a User
    nested as stored, as they are."""
    try:
        loaded = load_user({**attributes, "userName": UNREAD_USER_NAME})
    except ValidationError:
        return False
    return {k: v for k, v in loaded.items() if k != "userName"} == attributes


def check_allowed_domain(user_name: str, allowed_domains: Sequence[str]) -> None:
    """The tenant's allowlist (README.md, API surface): a userName outside it is refused, naming the fix."""
    if not allowed_domains:
        return
    domain = user_name.rpartition("@")[2].lower()
    if domain not in allowed_domains:
        raise invalid_value(
            f"the email domain {domain!r} of userName {user_name!r} is not one this organization allows "
            f"(allowed: {', '.join(allowed_domains)}). An admin of the organization can add it on the "
            "console's Settings page, Allowed domains (admin API: the allowed_domains setting), "
            "then send the user again",
            reason=Reason.DOMAIN_NOT_ALLOWED,
        )


def manager_id(resource: Mapping[str, Any]) -> str | None:
    """The enterprise manager's id, if the resource names one."""
    manager = resource.get(ENTERPRISE_SCHEMA, {}).get("manager") or {}
    return manager.get("value")


def change_kind(*, was_active: bool, was_linked: bool, active: bool) -> ChangeKind:
    """What a write did to a user, as recorded in its outbox row."""
    if not was_linked:
        return ChangeKind.RELINK
    if was_active and not active:
        return ChangeKind.DEACTIVATE
    if active and not was_active:
        return ChangeKind.REACTIVATE
    return ChangeKind.UPDATE
