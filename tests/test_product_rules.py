"""The seat, waiting-list, manual-assignment, heir and domain-team rules of scimsvc/product (pure)."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scimsvc.product.domain_teams import domain_memberships, email_domain
from scimsvc.product.heirs import Heir, heir_of
from scimsvc.product.licenses import (
    MANAGED_BY_SCIM,
    Decision,
    Licensing,
    manual_refusal,
    releases_a_seat,
    takes_a_seat,
)
from scimsvc.product.seats import Waiter, promote_waiting, seat_action, waiting_since

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def waiters(n: int) -> list[Waiter]:
    return [Waiter(uuid.uuid4(), NOW + timedelta(seconds=i)) for i in range(n)]


def test_free_seats_go_to_the_oldest_waiters_and_lowered_seats_take_none():
    queue = waiters(3)
    assert promote_waiting(Licensing(seats=3), used=1, waiting=queue) == [queue[0].id, queue[1].id]
    assert promote_waiting(Licensing(seats=1), used=2, waiting=queue) == []


@given(st.integers(0, 10), st.integers(0, 10), st.integers(0, 10))
def test_promotion_never_exceeds_the_seats(seats, used, waiting):
    promoted = promote_waiting(Licensing(seats=seats), used=used, waiting=waiters(waiting))
    assert len(promoted) == max(0, min(seats - used, waiting))


def test_a_waiting_user_keeps_its_place_and_joiners_queue_in_batch_order():
    earlier = NOW - timedelta(days=1)
    waits = Decision("free_restricted", waiting=True)
    assert waiting_since(waits, since=earlier, now=NOW, place=3) == earlier
    assert waiting_since(waits, since=None, now=NOW, place=1) < waiting_since(
        waits, since=None, now=NOW, place=2
    )
    assert waiting_since(Decision("full"), since=earlier, now=NOW, place=1) is None


def test_license_changes_are_audited_as_allocation_release_or_change():
    assert seat_action("free_restricted", "full") == "allocation"
    assert seat_action("full", None) == "release"
    assert seat_action("free", "free_restricted") == "license_change"


def test_an_operator_needs_scim_off_a_free_seat_for_full_and_an_active_user_for_any_license():
    tenant = Licensing(seats=1)
    refusal = functools.partial(manual_refusal, tenant, scim_enabled=False)
    assert refusal(eligible=True, current="free", wanted="full", used=0) is None
    assert "no seat is free (1 of 1 used)" in str(
        refusal(eligible=True, current="free", wanted="full", used=1)
    )
    assert refusal(eligible=True, current="full", wanted="full", used=1) is None
    assert "deactivated" in str(refusal(eligible=False, current=None, wanted="free", used=0))
    assert refusal(eligible=False, current="full", wanted=None, used=0) is None
    managed = manual_refusal(tenant, scim_enabled=True, eligible=True, current="free", wanted="free", used=0)
    assert managed == MANAGED_BY_SCIM
    assert takes_a_seat("free", "full") and not takes_a_seat("full", "full")
    assert releases_a_seat("full", None) and not releases_a_seat("free", None)


def test_a_board_goes_to_a_team_member_else_an_admin_else_nobody():
    member, admin = uuid.uuid4(), uuid.uuid4()
    assert heir_of(team_member=member, admin=admin) == Heir(member, "team_member")
    assert heir_of(team_member=None, admin=admin) == Heir(admin, "admin")
    assert heir_of(team_member=None, admin=None) == Heir(None, "none")


def test_users_join_the_teams_of_their_email_domain_in_any_case():
    ada, bob, eve = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    teams = {"corp.example": ["t1", "t2"], "other.example": ["t3"]}
    users = [(ada, "ada@Corp.Example"), (bob, "bob@nowhere.example"), (eve, "no-domain")]
    assert domain_memberships(users, teams) == [("t1", ada), ("t2", ada)]
    assert email_domain("a@b.example@c") == "b.example" and email_domain("plain") == ""
