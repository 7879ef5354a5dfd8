"""Who gets a seat (README.md, API surface: seats and licenses): the seat order for a batch of users,
promotion from the waiting list, a user's place in that list. Pure, no I/O; the worker applies them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from scimsvc.contract import AuditAction
from scimsvc.product.licenses import Decision, License, Licensing, decide_license, wants_full

QueueKey = tuple[int, datetime, int]
NEW_ASKER = datetime.min.replace(tzinfo=UTC)  # new askers are ordered by arrival, not by a time


@dataclass(frozen=True)
class Holder:
    """A user's licensing as stored, before its pending changes are applied."""

    id: UUID
    eligible: bool  # active and linked to SCIM
    user_type: str | None
    license: License | None
    waiting_since: datetime | None = None


@dataclass(frozen=True)
class Waiter:
    """A user outside the batch who waits for a seat."""

    id: UUID
    waiting_since: datetime


@dataclass(frozen=True)
class SeatPlan:
    """What the batch's users end with, which outside waiters get a seat, and the seats then in use."""

    decisions: dict[UUID, Decision]
    promoted: list[UUID]
    used: int


def keeps_seat(tenant: Licensing, user: Holder) -> bool:
    """A seat holder keeps it while active and still entitled, even when seats were lowered below use."""
    return user.license == "full" and user.eligible and (not tenant.flexible or wants_full(user.user_type))


def follow_rules(tenant: Licensing, user: Holder) -> Decision:
    """What a user holds once the tenant's license rules changed (flexible licenses turned on or off, or
    SCIM turned back on), before any free seat is handed out (`promote_waiting` does that next, oldest
    waiter first).

    The rule of a toggle: a seat holder keeps its seat exactly when `keeps_seat` says so (on a flexible
    tenant a seat belongs to `userType` Full users: the others give theirs up for the default license,
    audited as a release, and it goes to the waiting list); everyone else gets what `decide_license` gives
    when no seat is free, so license and waiting state both follow the new rule (a user who asks for a
    seat waits, keeping its place if it waited already; the others leave the list with the license the
    rule gives them).
    """
    if keeps_seat(tenant, user):
        return Decision("full")
    return decide_license(tenant, active=user.eligible, user_type=user.user_type, seat_free=False)


def seats_that_may_free(tenant: Licensing, *, used: int, batch: Sequence[Holder]) -> int:
    """The most seats the batch could leave free: how many outside waiters are worth reading."""
    return tenant.seats - used + sum(1 for u in batch if u.license == "full")


def plan_seats(
    tenant: Licensing, *, used: int, batch: Sequence[Holder], waiting: Sequence[Waiter] = ()
) -> SeatPlan:
    """Apply the policy to a batch of users (in the order their changes arrived) under the tenant lock.

    `used` counts every full seat of the tenant now, the batch's included; `waiting` is the oldest
    waiters outside the batch, in waiting order (at least `seats_that_may_free` of them, or all).
    Holders who still qualify keep their seat and the others release it first; then the free seats go
    first come, first served: to users already waiting (batch or not) by how long they have waited, then
    to the batch's new askers in arrival order. Everyone left without a seat gets the fallback.
    """
    decisions: dict[UUID, Decision] = {}
    askers: list[tuple[QueueKey, Holder]] = []
    for position, user in enumerate(batch):
        if keeps_seat(tenant, user):
            decisions[user.id] = Decision("full")
            continue
        if user.license == "full":
            used -= 1  # released below, whatever the user gets instead
        with_seat = decide_license(tenant, active=user.eligible, user_type=user.user_type, seat_free=True)
        if with_seat.license != "full":
            decisions[user.id] = with_seat  # no seat is involved (deactivated, flexible default)
            continue
        # Waiting users queue by how long they have waited (then id, as the waiting list is ordered);
        # new askers come after every waiting user, in arrival order.
        key = (0, user.waiting_since, user.id.int) if user.waiting_since else (1, NEW_ASKER, position)
        askers.append((key, user))

    queue: list[tuple[QueueKey, Holder | Waiter]] = [((0, w.waiting_since, w.id.int), w) for w in waiting]
    queue.extend(askers)
    queue.sort(key=lambda entry: entry[0])

    promoted: list[UUID] = []
    for _, candidate in queue:
        seat_free = used < tenant.seats
        if seat_free:
            used += 1
        if isinstance(candidate, Waiter):
            if seat_free:
                promoted.append(candidate.id)
            continue
        decisions[candidate.id] = decide_license(
            tenant, active=candidate.eligible, user_type=candidate.user_type, seat_free=seat_free
        )
    return SeatPlan(decisions={u.id: decisions[u.id] for u in batch}, promoted=promoted, used=used)


def promote_waiting(tenant: Licensing, *, used: int, waiting: Sequence[Waiter]) -> list[UUID]:
    """Which waiting users get the free seats (a seat freed or `seats` raised): the oldest first.

    `waiting` is the waiting list, oldest first (at least `seats_that_may_free` of it, or all). Lowering
    seats below use takes a seat from no one.
    """
    return plan_seats(tenant, used=used, batch=(), waiting=waiting).promoted


def waiting_since(
    decision: Decision, *, since: datetime | None, now: datetime, place: int
) -> datetime | None:
    """A user's place in the waiting list once `decision` is applied (None: not waiting).

    Joining keeps a user's first place (`since`, when it waited already). Users who join in one batch
    queue in the batch's order, `place` (from 1) microseconds after `now`: the batch's transaction time,
    or, for the batches of one change (`follow_rules`), the later of it and the last place given out by
    the previous batch, so that the list (ordered by this time, then id) keeps the order across batches.
    """
    if not decision.waiting:
        return None
    return since or now + timedelta(microseconds=place)


def seat_action(before: License | None, after: License | None) -> AuditAction:
    """The audit action of a license change: a seat taken, a seat released, or neither."""
    if after == "full":
        return AuditAction.ALLOCATION
    if before == "full":
        return AuditAction.RELEASE
    return AuditAction.LICENSE_CHANGE


@dataclass(frozen=True)
class NoSeatReason:
    """Why a user holds no full seat, in an organization admin's words: `text` is the English sentence
    with `{name}` places (the console shows it translated), `values` fill them; `kind` names the case."""

    kind: str
    text: str
    values: dict[str, int]


def no_seat_reason(
    tenant: Licensing,
    *,
    scim_enabled: bool,
    active: bool,
    pending: bool,
    user_type: str | None,
    waiting_position: int | None,
) -> NoSeatReason:
    """The reason shown beside a user without a full seat (the seats page), by the waiting rule of
    `decide_license`: a change not applied yet comes first (what the page shows is about to change), then
    deactivation, the waiting list (with the user's place, from 1), the flexible program, and licenses
    assigned by hand while SCIM is off."""
    if pending:
        return NoSeatReason("pending", "not applied yet: the latest change is still being applied", {})
    if not active:
        return NoSeatReason("deactivated", "deactivated: holds no license", {})
    if waiting_position is not None:
        if tenant.flexible:
            text = "waiting: asked for a seat (userType Full) when none was free (position {position})"
        else:
            text = "waiting: no seat was free when they needed one (position {position})"
        return NoSeatReason("waiting", text, {"position": waiting_position})
    if tenant.flexible and not wants_full(user_type):
        return NoSeatReason(
            "flexible",
            "flexible licenses: gets the default license; set userType Full in the IdP to ask for a seat",
            {},
        )
    if not scim_enabled:
        return NoSeatReason(
            "by_hand", "assigned by hand: SCIM is off, licenses are assigned on this page", {}
        )
    return NoSeatReason(
        "next_change", "no seat yet: joins the waiting list at its next change from the identity provider", {}
    )
