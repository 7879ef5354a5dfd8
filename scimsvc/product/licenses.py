"""Which license a user gets, and what an operator may assign by hand (README.md, API surface: seats
and licenses): pure decisions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

License = Literal["full", "free", "free_restricted"]


@dataclass(frozen=True)
class Licensing:
    """A tenant's license settings."""

    seats: int
    flexible: bool = False
    default_license: License = "free"  # flexible tenants: what a new user gets
    fallback_license: Literal["free_restricted", "none"] = "free_restricted"  # no seat free


@dataclass(frozen=True)
class Decision:
    """The license a user should hold (None: no license) and whether it waits for a seat."""

    license: License | None
    waiting: bool = False


def wants_full(user_type: str | None) -> bool:
    """`userType` Full, in any case, asks for a full license."""
    return (user_type or "").strip().lower() == "full"


def decide_license(tenant: Licensing, *, active: bool, user_type: str | None, seat_free: bool) -> Decision:
    """The license for one user, given whether a seat is free for it right now.

    Non-flexible: full if a seat is free, else the fallback. Flexible: the default license, or full for a
    `userType` Full user when a seat is free. The waiting rule: the waiting list holds the users who asked
    for a seat and did not get one, first come first served: `userType` Full users anywhere, and every
    active user of a non-flexible tenant (whose default is full) who got the fallback, or no license, only
    because no seat was free. On a flexible tenant only Full users wait. Deactivated users hold nothing
    and never wait.
    """
    if not active:
        return Decision(None)
    full_asked = wants_full(user_type)
    if tenant.flexible:
        if full_asked:
            return Decision("full") if seat_free else Decision(tenant.default_license, waiting=True)
        return Decision(tenant.default_license)
    if seat_free:
        return Decision("full")
    fallback: License | None = None if tenant.fallback_license == "none" else tenant.fallback_license
    return Decision(fallback, waiting=True)  # the default was a seat: they wanted one


def takes_a_seat(current: License | None, wanted: License | None) -> bool:
    """Going from `current` to `wanted` needs a seat that the user does not hold yet."""
    return wanted == "full" and current != "full"


def releases_a_seat(current: License | None, wanted: License | None) -> bool:
    """Going from `current` to `wanted` frees the user's seat for the waiting list."""
    return current == "full" and wanted != "full"


MANAGED_BY_SCIM = (
    "licenses of this tenant are managed by SCIM: the identity provider assigns them while SCIM is enabled. "
    "Change the user's assignment in the IdP, or disable SCIM (PUT /admin/v1/tenants/{tid}/scim "
    '{"enabled": false}) to assign licenses by hand'
)


def manual_refusal(
    tenant: Licensing,
    *,
    scim_enabled: bool,
    eligible: bool,
    current: License | None,
    wanted: License | None,
    used: int,
) -> str | None:
    """Why an operator may not give the user `wanted` now, or None when the assignment stands.

    `used` counts the tenant's full seats held by other users (read only when `takes_a_seat`). While SCIM
    is on, the identity provider assigns licenses. The operator's choice comes before the waiting list, but
    never over the seats: deactivated users hold nothing, and a full license needs a free seat.
    """
    if scim_enabled:
        return MANAGED_BY_SCIM
    if wanted is not None and not eligible:
        return "the user is deactivated: deactivated users hold no license"
    if takes_a_seat(current, wanted) and used >= tenant.seats:
        return f"no seat is free ({used} of {tenant.seats} used): raise seats or free one"
    return None
