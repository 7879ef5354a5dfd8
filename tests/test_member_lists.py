"""Member lists of group writes: the fast path for the lists IdPs send agrees with the member-by-member one.

Through HTTP (a bad member deep in a push of 10,000) in test_groups.py; here the pure rule, property-tested.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scimsvc.scim.errors import ScimError
from scimsvc.scim.groups import _member_ids, _plain_member_ids, member_values

canonical_ids = st.uuids().map(str)
# Ids as IdPs send them, near misses of the canonical form, and text that only looks like one.
id_texts = st.one_of(
    canonical_ids,
    canonical_ids.map(str.upper),
    canonical_ids.map(lambda i: i.replace("-", "")),
    canonical_ids.map(lambda i: "{" + i + "}"),
    canonical_ids.map(lambda i: i[:-1]),
    canonical_ids.map(lambda i: i + "\n" + i),
    canonical_ids.map(lambda i: i[:8] + "x" + i[9:]),
    st.just("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"),
    st.just("ééééééé-e-eeee-eeee-eeee-eeeeeeeeeeee"),
    st.text(max_size=40),
)
values = st.one_of(id_texts, st.none(), st.integers(), st.lists(st.integers(), max_size=2))
kinds = st.one_of(st.sampled_from(["User", "user", "USER", "", "Group"]), st.none(), st.integers())
idp_members = st.fixed_dictionaries(
    {"value": canonical_ids},
    optional={"display": st.text(max_size=10), "type": st.sampled_from(["User", "user", ""]), "$ref": values},
)
odd_members = st.one_of(
    st.dictionaries(
        st.sampled_from(["value", "display", "type", "$ref", "Value", "TYPE", "other"]),
        st.one_of(values, kinds, st.lists(st.integers(), max_size=1)),
        max_size=4,
    ),
    id_texts,
    st.integers(),
    st.none(),
)
member_lists = st.one_of(
    st.lists(idp_members, max_size=12),
    st.lists(st.one_of(idp_members, odd_members), max_size=12),
    st.lists(idp_members, min_size=1, max_size=12).flatmap(
        lambda items: st.lists(st.sampled_from(items), min_size=len(items), max_size=2 * len(items))
    ),
)


def outcome(check: Any, items: list[Any]) -> Any:
    try:
        return check(items)
    except ScimError as exc:
        return exc.status, exc.scim_type, exc.detail


@settings(max_examples=500, deadline=None)
@given(member_lists)
def test_the_fast_path_gives_what_the_member_by_member_check_gives(items):
    fast = _plain_member_ids(items)
    checked = outcome(lambda i: _member_ids(i, "members"), items)
    if fast is not None:
        assert fast == checked
    assert outcome(member_values, items) == checked


def test_the_lists_idps_send_take_the_fast_path():
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for items in [
        [{"value": i} for i in ids],
        [{"value": i, "display": "A B", "type": "User"} for i in ids],
        [{"value": i, "$ref": f"https://x/Users/{i}"} for i in ids] + [{"value": ids[0]}],
        [],
    ]:
        assert _plain_member_ids(items) == list(dict.fromkeys(ids if items else []))


@pytest.mark.parametrize(
    "value",
    [
        "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx",
        "00000000-0000-0000-0000-00000000000g",
        "00000000-0000-0000-0000-000000000000\n00000000-0000-0000-0000-000000000000",
        "00000000-0000-0000-0000-0000000000000",
        "00000000-0000-0000-0000-00000000000\u00e9",
    ],
)
def test_text_shaped_like_an_id_is_refused_naming_it(value):
    items = [{"value": str(uuid.uuid4())} for _ in range(1000)]
    items[700] = {"value": value}
    with pytest.raises(ScimError) as caught:
        member_values(items)
    assert caught.value.status == 400 and repr(value) in caught.value.detail
