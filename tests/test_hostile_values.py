"""Values at and past what PostgreSQL can hold get a 400 (or the console's error page), never a 500.

Dates whose UTC time leaves years 1..9999, numbers past a bigint or a double, NUL characters and lone
surrogates: each is refused where it comes in, with a detail that says what to send instead, the
database unchanged and no "unhandled error" logged.
"""

from __future__ import annotations

import html
import json
import logging
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from schemas.catalog import Attr, ResourceTypeDef, SchemaDef
from schemas.user import PRODUCT_SCHEMA
from scimsvc.scim.errors import ScimError
from scimsvc.scim.filters.match import matches
from scimsvc.scim.filters.parse import parse_filter
from scimsvc.scim.filters.sql import compile_filter
from tests.conftest import ADMIN_HEADERS, create_team, post_user, unique_email, user_body
from tests.test_console import csrf_of, signed_in

BIGINT_MAX = 2**63 - 1
DATE_ATTRS = ["meta.created", "meta.lastModified", f"{PRODUCT_SCHEMA}:provisionedAt"]
OUT_OF_RANGE_DATES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:00:00-01:00",
    "0001-01-01T00:59:59.999999+01:00",
]
EDGE_DATES = ["0001-01-01T00:00:00Z", "0001-01-01T01:00:00+01:00", "9999-12-31T23:59:59.999999Z"]
SEARCHES = [("/scim/v2/Users", "Users"), ("/scim/v2/Groups", "Groups"), ("/scim/v2", "")]


def unhandled(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and "unhandled" in r.getMessage()]


async def search(client: Any, tenant: Any, base: str, filter_text: str, *, post: bool) -> Any:
    """A filtered list by GET (Users, Groups) or by POST .search (Users, Groups and the root)."""
    if post:
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter_text}
        return await client.post(f"{base}/.search", json=body, headers=tenant.headers)
    return await client.get(base, params={"filter": filter_text}, headers=tenant.headers)


def search_routes(attr: str) -> list[tuple[str, bool]]:
    routes = [(base, True) for base, _ in SEARCHES]
    routes += [(base, False) for base, kind in SEARCHES if kind]
    # provisionedAt is a User attribute: the Groups routes do not know it
    return [(b, p) for b, p in routes if not (attr.startswith(PRODUCT_SCHEMA) and b.endswith("Groups"))]


@pytest.mark.parametrize("attr", DATE_ATTRS)
async def test_a_filter_date_outside_years_1_to_9999_in_utc_is_an_invalid_filter(
    client, tenant, caplog, attr
):
    await post_user(client, tenant)
    for value in OUT_OF_RANGE_DATES:
        for op in ("gt", "lt", "eq"):
            for base, post in search_routes(attr):
                resp = await search(client, tenant, base, f'{attr} {op} "{value}"', post=post)
                assert resp.status == 400, (base, post, op, value, await resp.text())
                body = await resp.json()
                assert body["scimType"] == "invalidFilter"
                assert "out of range" in body["detail"] and "0001-01-01T00:00:00Z" in body["detail"]
    assert not unhandled(caplog)


@pytest.mark.parametrize("attr", DATE_ATTRS)
async def test_the_first_and_last_representable_instants_still_filter(client, tenant, attr):
    user = await post_user(client, tenant)
    for value in EDGE_DATES:
        for base, post in search_routes(attr):
            resp = await search(client, tenant, base, f'{attr} lt "{value}"', post=post)
            assert resp.status == 200, (base, value, await resp.text())
    resp = await search(client, tenant, "/scim/v2/Users", f'meta.created gt "{EDGE_DATES[0]}"', post=False)
    assert user["id"] in {r["id"] for r in (await resp.json())["Resources"]}


async def test_a_309_digit_number_in_a_filter_is_compared_as_text(client, tenant, caplog):
    user = await post_user(client, tenant, externalId="9" * 309)
    for number in ("9" * 309, "-" + "9" * 309):
        resp = await search(client, tenant, "/scim/v2/Users", f"externalId eq {number}", post=False)
        assert resp.status == 200, await resp.text()
        ids = [r["id"] for r in (await resp.json())["Resources"]]
        assert ids == ([user["id"]] if not number.startswith("-") else [])
    assert not unhandled(caplog)


@pytest.mark.parametrize("number", ["9" * 5000, "1e999", "-1e999", "1.5e400"])
async def test_a_number_no_double_or_int_holds_is_an_invalid_filter(client, tenant, number):
    resp = await search(client, tenant, "/scim/v2/Users", f"userName eq {number}", post=True)
    assert resp.status == 400, await resp.text()
    body = await resp.json()
    assert body["scimType"] == "invalidFilter" and "out of range" in body["detail"]


async def audit_ids(db: Any, tenant_id: str) -> list[int]:
    return [r["id"] for r in await db.fetch("SELECT id FROM audit_log WHERE tenant_id = $1", tenant_id)]


@pytest.mark.parametrize(
    "before", [str(BIGINT_MAX + 1), str(2**64), "9" * 309, "9" * 5000, "0", "-1", "1.5", "1e3", "x"]
)
async def test_an_audit_before_past_a_bigint_or_not_an_id_is_a_400_naming_the_range(
    client, tenant, caplog, before
):
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/audit", params={"before": before}, headers=ADMIN_HEADERS
    )
    assert resp.status == 400, await resp.text()
    assert str(BIGINT_MAX) in (await resp.json())["detail"]
    assert not unhandled(caplog)


@pytest.mark.parametrize("before", ["1", str(2**31), str(BIGINT_MAX)])
async def test_an_audit_before_inside_a_bigint_is_a_page(client, tenant, before):
    resp = await client.get(
        f"/admin/v1/tenants/{tenant.id}/audit", params={"before": before}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()


@pytest.mark.parametrize(
    ("limit", "status"),
    [(str(2**31), 200), (str(2**63), 200), ("-1", 200), ("9" * 309, 200), ("9" * 5000, 400)],
)
async def test_admin_limits_are_clamped_or_refused(client, tenant, limit, status):
    for path in ("audit", "users", "boards"):
        resp = await client.get(
            f"/admin/v1/tenants/{tenant.id}/{path}", params={"limit": limit}, headers=ADMIN_HEADERS
        )
        assert resp.status == status, (path, await resp.text())


async def console_page(client: Any, path: str) -> tuple[int, str]:
    resp = await client.get(path)
    return resp.status, html.unescape(await resp.text())


@pytest.mark.parametrize("before", [str(BIGINT_MAX + 1), "9" * 309, "0", "-5", "abc"])
async def test_the_console_audit_page_shows_an_error_for_a_before_past_a_bigint(
    client, tenant, caplog, before
):
    await signed_in(client)
    status, text = await console_page(client, f"/console/tenants/{tenant.id}/audit?before={before}")
    assert status == 400 and "That page of the audit log does not exist" in text
    status, _ = await console_page(client, f"/console/tenants/{tenant.id}/audit?before={BIGINT_MAX}")
    assert status == 200
    assert not unhandled(caplog)


@pytest.mark.parametrize("path", ["audit?user=", "users?q="])
async def test_the_console_refuses_a_nul_in_a_query(client, tenant, caplog, path):
    await signed_in(client)
    status, text = await console_page(client, f"/console/tenants/{tenant.id}/{path}a%00b")
    assert status == 400 and "NUL character" in text, text[-600:]
    assert not unhandled(caplog)


async def test_the_console_forms_refuse_a_nul_in_the_user_field(client, tenant, db, caplog):
    user = await post_user(client, tenant)
    team = await create_team(client, tenant, "Ops")
    csrf = await signed_in(client)
    before = await db.fetch("SELECT * FROM team_members WHERE team_id = $1", team["id"])
    audit = await audit_ids(db, tenant.id)
    forms = {
        f"/console/tenants/{tenant.id}/teams/{team['id']}/members": {"user": user["userName"] + "\x00"},
        f"/console/tenants/{tenant.id}/seats/assign": {"user": "\x00" + user["userName"], "license": "free"},
    }
    for path, data in forms.items():
        resp = await client.post(path, data={"csrf_token": csrf, **data}, allow_redirects=False)
        assert resp.status == 400, (path, await resp.text())
        assert "cannot contain the NUL character" in html.unescape(await resp.text())
    assert await db.fetch("SELECT * FROM team_members WHERE team_id = $1", team["id"]) == before
    assert await audit_ids(db, tenant.id) == audit
    assert not unhandled(caplog)


# --- Generated: every boundary, every hostile character -------------------------------------------------

BOUNDARY_INTS = st.sampled_from(
    [0, 1, -1, 2**31 - 1, 2**31, -(2**31), 2**53, 2**63 - 1, 2**63, -(2**63), 2**64, 10**308, 10**309]
)
INTS = st.one_of(BOUNDARY_INTS, st.integers(), st.integers(min_value=-(10**400), max_value=10**400))
DATES = st.builds(
    lambda year, rest, offset: f"{year:04d}-{rest}{offset}",
    st.sampled_from([1, 2, 1970, 2038, 9998, 9999]),
    st.sampled_from(["01-01T00:00:00", "12-31T23:59:59.999999", "06-15T12:00:00"]),
    st.sampled_from(["Z", "+00:00", "+01:00", "-01:00", "+23:59", "-23:59", ""]),
)
HOSTILE_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\ud800", "\udfff", "a", '"', "\\", "%", "_"]), st.characters()
    ),
    max_size=12,
)
FILTER_ATTRS = st.sampled_from(["meta.created", "meta.lastModified", "userName", "displayName", "externalId"])
OPS = st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le"])


def json_string(text: str) -> str:
    """`text` as a filter string token, NUL and lone surrogates as \\u escapes (as a client sends them)."""
    return json.dumps(text)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    attr=FILTER_ATTRS,
    op=OPS,
    value=st.one_of(INTS.map(str), DATES.map(json_string), HOSTILE_TEXT.map(json_string)),
    base=st.sampled_from(["/scim/v2/Users", "/scim/v2/Groups", "/scim/v2"]),
)
async def test_generated_boundary_filters_never_answer_5xx(client, tenant, caplog, attr, op, value, base):
    if base.endswith("Groups") and attr in ("userName", "externalId"):
        attr = "displayName"
    resp = await search(client, tenant, base, f"{attr} {op} {value}", post=base == "/scim/v2")
    assert resp.status in (200, 400), (attr, op, value, await resp.text())
    if resp.status == 400:
        assert (await resp.json())["scimType"] == "invalidFilter"
    assert not unhandled(caplog)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE_TEXT, number=INTS)
@example(text="\ud800", number=1)  # a lone surrogate in every field, the form's too
async def test_generated_admin_and_console_values_never_answer_5xx(client, tenant, db, caplog, text, number):
    tenants_before = await db.fetchval("SELECT count(*) FROM tenants")
    resp = await client.post(
        "/admin/v1/tenants", data=_json({"name": text or "x", "seats": number}), headers=_admin_json()
    )
    assert resp.status in (201, 400), await resp.text()
    if resp.status == 400:
        assert await db.fetchval("SELECT count(*) FROM tenants") == tenants_before
    for path in ("users", "audit"):
        query = {"q": text, "user_id": text} if path == "users" else {"before": str(number)}
        resp = await client.get(f"/admin/v1/tenants/{tenant.id}/{path}", params=query, headers=ADMIN_HEADERS)
        assert resp.status < 500, await resp.text()
    await signed_in(client)
    encoded = quote(text.encode("utf-8", "surrogatepass"))
    for path in (f"audit?user={encoded}&before={number}", f"users?q={encoded}"):
        status, _ = await console_page(client, f"/console/tenants/{tenant.id}/{path}")
        assert status < 500, path
    page = await client.get(f"/console/tenants/{tenant.id}/teams")
    # Encoded here, as a browser's form would send it: aiohttp's form encoder refuses lone surrogates.
    form = f"csrf_token={quote(csrf_of(await page.text()))}&name={encoded}"
    resp = await client.post(
        f"/console/tenants/{tenant.id}/teams",
        data=form.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        allow_redirects=False,
    )
    assert resp.status < 500
    assert not unhandled(caplog)


def _json(body: dict[str, Any]) -> bytes:
    """JSON with NUL and lone surrogates as \\u escapes, as a client sends them (orjson cannot)."""
    return json.dumps(body).encode()


def _admin_json() -> dict[str, str]:
    return {**ADMIN_HEADERS, "Content-Type": "application/json"}


ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER_FIELDS: dict[str, Any] = {
    "title": lambda t: {"title": t},
    "externalId": lambda t: {"externalId": t},
    "emails.type": lambda t: {"emails": [{"value": "x@example.com", "type": t}]},
    "enterprise.department": lambda t: {ENTERPRISE: {"department": t}},
    "an unknown attribute's name": lambda t: {"x" + t: "y"},
}


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(USER_FIELDS)), text=HOSTILE_TEXT)
async def test_generated_nul_and_surrogates_in_a_scim_body_are_a_400_and_store_nothing(
    client, tenant, db, caplog, field, text
):
    count = "SELECT count(*) FROM users WHERE tenant_id = $1"
    before = await db.fetchval(count, tenant.id)
    body = {**user_body(unique_email()), **USER_FIELDS[field](text)}
    resp = await client.post("/scim/v2/Users", data=_json(body), headers=tenant.headers)
    hostile = "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text)
    assert resp.status < 500, await resp.text()
    if hostile and not field.startswith("an unknown"):  # unknown attributes are ignored (RFC 7644 §3.3)
        assert resp.status == 400, await resp.text()
        assert "NUL" in (await resp.json())["detail"] or "surrogate" in (await resp.json())["detail"]
    if resp.status == 400:
        assert await db.fetchval(count, tenant.id) == before
    assert not unhandled(caplog)


# --- Numbers against a number attribute (none in the SCIM catalog today; an extension may add one) -------

_CORE = SchemaDef("urn:example:Thing", "Thing", "", (Attr("level", type="integer"),))
THINGS = ResourceTypeDef("Thing", "/Things", "", _CORE)


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        ("9" * 309, True),
        ('"1E+131071"', True),
        ('"-9.9E+131071"', True),
        ('"1E-16383"', True),
        ('"1E+131072"', False),
        ('"-1E+999999"', False),
        ('"1E-16384"', False),
        ('"1E-999999"', False),
    ],
)
async def test_a_number_filter_value_is_bound_by_postgresql_or_refused(db, value, fits):
    for op in ("eq", "gt", "le"):
        node = parse_filter(f"level {op} {value}")
        params: list[Any] = []
        if not fits:
            with pytest.raises(ScimError, match="out of range"):
                compile_filter(node, THINGS, columns={}, resource_column="r", params=params)
            with pytest.raises(ScimError, match="out of range"):
                matches(node, {"level": 5}, THINGS)
            continue
        where = compile_filter(node, THINGS, columns={}, resource_column="r", params=params)
        sql = f"SELECT count(*) FROM (SELECT '{{\"level\": 5}}'::jsonb AS r) t WHERE {where}"  # noqa: S608
        found = await db.fetchval(sql, *params)
        assert bool(found) == matches(node, {"level": 5}, THINGS)


@pytest.mark.parametrize(
    ("number", "status"),
    [
        (str(2**31), 200),
        (str(2**63), 200),
        (str(-(2**63) - 1), 200),
        ("9" * 309, 200),
        ("-" + "9" * 309, 200),
        ("9" * 5000, 400),
    ],
)
async def test_scim_paging_past_any_integer_column_is_clamped_or_a_short_400(client, tenant, number, status):
    for name in ("startIndex", "count"):
        for base, post in [("/scim/v2/Users", False), ("/scim/v2/Groups", False), ("/scim/v2", True)]:
            if post:
                resp = await client.post(f"{base}/.search", json={name: number}, headers=tenant.headers)
            else:
                resp = await client.get(base, params={name: number}, headers=tenant.headers)
            assert resp.status == status, (name, base, await resp.text())
            if status == 400:
                assert len((await resp.json())["detail"]) < 200
