"""Bad input of every kind: the right RFC 7644 error, and nothing changes in the database."""

from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest

from tests.conftest import unique_email, user_body

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


async def snapshot(db: Any, tenant_id: str) -> tuple[Any, ...]:
    users = await db.fetch(
        "SELECT id, user_name, version, active, scim_linked FROM users "
        "WHERE tenant_id = $1::uuid ORDER BY id",
        tenant_id,
    )
    outbox = await db.fetchval("SELECT count(*) FROM outbox WHERE tenant_id = $1::uuid", tenant_id)
    return tuple(map(tuple, users)), outbox


@pytest.fixture
async def existing(client, tenant) -> dict[str, Any]:
    resp = await client.post("/scim/v2/Users", json=user_body(unique_email()), headers=tenant.headers)
    return await resp.json()


LONG_TEXT = "".join(random.Random(7).choice(string.ascii_letters + "ßø語") for _ in range(4000))

DEEP = b"[" * 1000 + b"]" * 1000  # JSON nested 1,000 deep (orjson parses up to 1,024)

CASES: list[tuple[str, str, str, Any, int, str | None]] = [
    # (name, method, path, body, status, scimType)
    ("malformed json", "POST", "/Users", b'{"userName": ', 400, "invalidSyntax"),
    ("empty body", "POST", "/Users", b"", 400, "invalidSyntax"),
    ("json array body", "POST", "/Users", [1, 2], 400, "invalidValue"),
    ("missing userName", "POST", "/Users", {"name": {"givenName": "x"}}, 400, "invalidValue"),
    ("userName not an email", "POST", "/Users", {"userName": "not-an-email"}, 400, "invalidValue"),
    ("userName wrong type", "POST", "/Users", {"userName": {"a": 1}}, 400, "invalidValue"),
    ("active wrong type", "POST", "/Users", user_body("t@x.com", active="maybe"), 400, "invalidValue"),
    ("emails not a list", "POST", "/Users", user_body("t@x.com", emails="t@x.com"), 400, "invalidValue"),
    ("name not an object", "POST", "/Users", user_body("t@x.com", name="Ada"), 400, "invalidValue"),
    (
        "photo not an image URL",
        "POST",
        "/Users",
        user_body("t@x.com", photos=[{"value": "https://x.com/me.svg", "type": "photo"}]),
        400,
        "invalidValue",
    ),
    (
        "photo not http",
        "POST",
        "/Users",
        user_body("t@x.com", photos=[{"value": "ftp://x.com/me.png", "type": "photo"}]),
        400,
        "invalidValue",
    ),
    ("NUL in a string", "POST", "/Users", user_body("t@x.com", displayName="x\u0000y"), 400, "invalidValue"),
    # Random text too long for an index entry: refused by the schema, not by PostgreSQL (a 500).
    (
        "displayName too long",
        "POST",
        "/Users",
        user_body("t@x.com", displayName=LONG_TEXT),
        400,
        "invalidValue",
    ),
    (
        "externalId too long",
        "POST",
        "/Users",
        user_body("t@x.com", externalId=LONG_TEXT),
        400,
        "invalidValue",
    ),
    ("userName too long", "POST", "/Users", user_body(LONG_TEXT[:300] + "@x.com"), 400, "invalidValue"),
    (
        "NUL in a sub-attribute",
        "POST",
        "/Users",
        user_body("t@x.com", name={"givenName": "x\u0000"}),
        400,
        "invalidValue",
    ),
    (
        "photo URL malformed",
        "POST",
        "/Users",
        user_body("t@x.com", photos=[{"value": "http://[::1", "type": "photo"}]),
        400,
        "invalidValue",
    ),
    (
        "patch NUL",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "replace", "path": "displayName", "value": "x\u0000"}]},
        400,
        "invalidValue",
    ),
    (
        "own manager",
        "PATCH",
        "/Users/{id}",
        {
            "Operations": [
                {
                    "op": "replace",
                    "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "{id}"},
                }
            ]
        },
        400,
        "invalidValue",
    ),
    ("put malformed json", "PUT", "/Users/{id}", b"{nope", 400, "invalidSyntax"),
    ("put bad email", "PUT", "/Users/{id}", {"userName": "x"}, 400, "invalidValue"),
    ("put password", "PUT", "/Users/{id}", user_body("{userName}", password="pw"), 400, "mutability"),
    ("patch no Operations", "PATCH", "/Users/{id}", {"schemas": []}, 400, "invalidSyntax"),
    (
        "patch bad op",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "move", "path": "title"}]},
        400,
        "invalidSyntax",
    ),
    (
        "patch remove without path",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "remove"}]},
        400,
        "noTarget",
    ),
    (
        "patch unknown path",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "replace", "path": "shoeSize", "value": 9}]},
        400,
        "invalidPath",
    ),
    (
        "patch bad value type",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "replace", "path": "active", "value": "perhaps"}]},
        400,
        "invalidValue",
    ),
    (
        "patch bad email",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "replace", "path": "userName", "value": "nope"}]},
        400,
        "invalidValue",
    ),
    (
        "patch id",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "replace", "path": "id", "value": "x"}]},
        400,
        "mutability",
    ),
    (
        "patch bad filter",
        "PATCH",
        "/Users/{id}",
        {"Operations": [{"op": "replace", "path": "emails[type eq].value", "value": "a@b.c"}]},
        400,
        None,
    ),
    ("filter syntax", "GET", "/Users?filter=userName eq", None, 400, "invalidFilter"),
    ("filter unknown attribute", "GET", '/Users?filter=shoeSize eq "9"', None, 400, "invalidFilter"),
    (
        "filter unknown attribute in or",
        "GET",
        '/Users?filter=secret eq "x" or userName eq "a@b.c"',
        None,
        400,
        "invalidFilter",
    ),
    ("filter bad operator", "GET", '/Users?filter=userName like "a"', None, 400, "invalidFilter"),
    ("filter unbalanced", "GET", '/Users?filter=(userName eq "a"', None, 400, "invalidFilter"),
    ("filter bad date", "GET", '/Users?filter=meta.lastModified gt "yesterday"', None, 400, "invalidFilter"),
    ("filter bool compare", "GET", "/Users?filter=active gt true", None, 400, "invalidFilter"),
    ("startIndex not a number", "GET", "/Users?startIndex=abc", None, 400, "invalidValue"),
    ("count not a number", "GET", "/Users?count=ten", None, 400, "invalidValue"),
    ("unknown route", "GET", "/Widgets", None, 404, None),
    ("unknown route post", "POST", "/Users/{id}/extra", {"a": 1}, 404, None),
    ("wrong method", "POST", "/Users/{id}", user_body("t@x.com"), 405, None),
    ("wrong method on list", "DELETE", "/Users", None, 405, None),
    ("body too large", "POST", "/Users", b'{"userName": "' + b"a" * 1_100_000 + b'@x.com"}', 413, None),
    # JSON nested 1,000 deep parses, but a plain repr of it in the error's detail raised RecursionError.
    ("search filter nested deep", "POST", "/.search", b'{"filter": %s}' % DEEP, 400, "invalidSyntax"),
    (
        "patch operation nested deep",
        "PATCH",
        "/Users/{id}",
        b'{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [%s]}' % DEEP,
        400,
        "invalidSyntax",
    ),
]


@pytest.mark.parametrize(
    ("name", "method", "path", "body", "status", "scim_type"), CASES, ids=[c[0] for c in CASES]
)
async def test_bad_input_gets_scim_error_and_changes_nothing(
    client, tenant, db, existing, name, method, path, body, status, scim_type
):
    before = await snapshot(db, tenant.id)
    url = "/scim/v2" + path.replace("{id}", existing["id"])
    if isinstance(body, dict) and "{id}" in str(body):
        body = json.loads(json.dumps(body).replace("{id}", existing["id"]))
    if isinstance(body, dict) and body.get("userName") == "{userName}":
        body = {**body, "userName": existing["userName"]}
    kwargs: dict[str, Any] = {"headers": tenant.headers}
    if isinstance(body, bytes):
        kwargs["data"] = body
    elif body is not None:
        kwargs["json"] = body
    resp = await client.request(method, url, **kwargs)
    text = await resp.text()
    assert resp.status == status, text
    assert "Traceback" not in text and "<html" not in text.lower()
    error = await resp.json(content_type=None)
    assert error["schemas"] == [ERROR_SCHEMA]
    assert error["status"] == str(status)
    assert error["detail"]
    if scim_type is not None:
        assert error.get("scimType") == scim_type, error
    assert await snapshot(db, tenant.id) == before


async def test_wrong_method_lists_allowed_methods(client, tenant, existing):
    resp = await client.post(f"/scim/v2/Users/{existing['id']}", json={}, headers=tenant.headers)
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]


async def test_start_index_beyond_any_table_is_an_empty_page(client, tenant, existing):
    resp = await client.get("/scim/v2/Users?startIndex=99999999999999999999999", headers=tenant.headers)
    assert resp.status == 200
    page = await resp.json()
    assert page["Resources"] == [] and page["totalResults"] >= 1
