"""The license policy (scimsvc/product/licenses.py) as a table, plus a property: seats never over-allocate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scimsvc.product.licenses import Decision, Licensing, decide_license

FIXED = Licensing(seats=2)
FIXED_NONE = Licensing(seats=2, fallback_license="none")
FLEX = Licensing(seats=2, flexible=True, default_license="free")
FLEX_RESTRICTED = Licensing(seats=2, flexible=True, default_license="free_restricted")


@pytest.mark.parametrize(
    ("tenant", "active", "user_type", "seat_free", "expected"),
    [
        (FIXED, True, None, True, Decision("full")),
        # The waiting rule: on a non-flexible tenant everyone's default is a seat, so a user who got the
        # fallback for lack of one waits, whatever its userType (it did not wait before round two).
        (FIXED, True, None, False, Decision("free_restricted", waiting=True)),
        (FIXED, True, "Employee", False, Decision("free_restricted", waiting=True)),
        (FIXED, True, "Full", False, Decision("free_restricted", waiting=True)),
        (FIXED, True, "Employee", True, Decision("full")),
        (FIXED_NONE, True, None, False, Decision(None, waiting=True)),
        (FIXED_NONE, True, "full", False, Decision(None, waiting=True)),
        (FLEX, True, None, True, Decision("free")),
        (FLEX, True, "Full", True, Decision("full")),
        (FLEX, True, "FULL", False, Decision("free", waiting=True)),
        (FLEX, True, " full ", True, Decision("full")),
        (FLEX_RESTRICTED, True, None, True, Decision("free_restricted")),
        (FLEX_RESTRICTED, True, "Full", False, Decision("free_restricted", waiting=True)),
        # On a flexible tenant only userType Full users wait: the others never asked for a seat.
        (FLEX, True, None, False, Decision("free")),
        (FLEX, True, "Employee", False, Decision("free")),
        (FIXED, False, "Full", True, Decision(None)),
        (FLEX, False, None, True, Decision(None)),
    ],
)
def test_license_table(tenant, active, user_type, seat_free, expected):
    assert decide_license(tenant, active=active, user_type=user_type, seat_free=seat_free) == expected


tenants = st.builds(
    Licensing,
    seats=st.integers(min_value=0, max_value=5),
    flexible=st.booleans(),
    default_license=st.sampled_from(["free", "free_restricted"]),
    fallback_license=st.sampled_from(["free_restricted", "none"]),
)
users = st.lists(st.tuples(st.booleans(), st.sampled_from([None, "Full", "full", "Employee"])), max_size=30)


@given(tenants, users)
def test_allocating_users_in_turn_never_exceeds_the_seats(tenant, people):
    used = 0
    for active, user_type in people:
        decision = decide_license(tenant, active=active, user_type=user_type, seat_free=used < tenant.seats)
        if decision.license == "full":
            used += 1
        assert not (decision.waiting and decision.license == "full")
        assert active or decision == Decision(None)
        # The waiting rule: an active user is left without a seat only by a full tenant, and then waits
        # unless the tenant is flexible and the user did not ask for a seat.
        if active and decision.license != "full":
            asked = not tenant.flexible or (user_type or "").lower() == "full"
            assert decision.waiting == (asked and used >= tenant.seats)
    assert used <= tenant.seats
