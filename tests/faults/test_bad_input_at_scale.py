"""10,000 generated malformed requests (hypothesis): only 4xx answers, never a 5xx, and the database is
byte for byte what it was before.

Every generated request is wrong by construction (a userName that is no email, a body that is not JSON
or not UTF-8, a filter that cannot parse, a path or method that does not exist, a credential that is
wrong...), so no answer may be a 2xx either. The corpus is generated derandomized, so CI runs repeat.
"""

from __future__ import annotations

import asyncio
import functools
import string
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from marshmallow import fields

from tests.conftest import ADMIN_HEADERS, Tenant, make_tenant, post_user
from tests.test_groups import make_group

REQUESTS = 10_000
CONCURRENCY = 16
PER_EXAMPLE = 20
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
# Tables whose every row must be unchanged, each with its key for a stable order.
TABLES = {
    "users": "id",
    "groups": "id",
    "group_members": "group_id, user_id",
    "team_members": "team_id, user_id",
    "outbox": "id",
    "notices": "id",
    "audit_log": "id",
    "teams": "id",
    "tenants": "id",
}


@dataclass(frozen=True)
class Bad:
    """One malformed request: `kind` names the family it was generated from."""

    kind: str
    method: str
    path: str  # relative to /scim/v2 unless it starts with /admin or //
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    credential: str = "tenant"  # tenant | none | wrong | admin-wrong


# Text without lone surrogates: JSON cannot carry one, and orjson refuses to write it.
TEXT = functools.partial(st.text, alphabet=st.characters(blacklist_categories=("Cs",)))


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)


INT = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson writes; bigger ones come as bytes
# Any JSON value, nested a little.
JSON = st.recursive(
    st.none() | st.booleans() | INT | st.floats(allow_nan=False) | TEXT(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT(max_size=8), inner, max_size=4),
    max_leaves=12,
)
NOT_A_STRING = st.none() | st.booleans() | INT | st.floats(allow_nan=False) | st.lists(JSON, max_size=3)
NOT_AN_EMAIL = (
    st.text(alphabet=st.characters(blacklist_characters="@", blacklist_categories=("Cs",)), max_size=40)
    | NOT_A_STRING
)
# Over the 1 MB body limit; a few shared bodies, so 600 of them cost no memory.
HUGE_BODIES = [
    json_bytes({"schemas": [USER], "userName": "big@example.com", "displayName": "x" * n})
    for n in (1_048_577, 1_200_000, 2_000_000)
]
LONG = st.integers(min_value=5_000, max_value=20_000).map(lambda n: "ß" * n)
# Strings marshmallow reads as booleans (a lenient reading, not an error).
BOOLEAN_WORDS = {str(w).lower() for w in fields.Boolean.truthy | fields.Boolean.falsy}
ATTRIBUTES = ["displayName", "name", "emails", "active", "userType", "photos", "roles", "title", "externalId"]


@st.composite
def user_with_a_bad_user_name(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [USER], "userName": draw(NOT_AN_EMAIL | LONG)}
    for attr in draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=4, unique=True)):
        body[attr] = draw(JSON)
    return body


@st.composite
def user_with_a_wrong_type(draw: st.DrawFn) -> dict[str, Any]:
    # A good userName, one attribute of a type no schema accepts there.
    wrong = {
        "active": TEXT(min_size=1, max_size=10).filter(lambda s: s.lower() not in BOOLEAN_WORDS)
        | st.lists(JSON, min_size=1, max_size=3),
        "name": TEXT(max_size=10) | INT | st.lists(JSON, min_size=1, max_size=2),
        "emails": TEXT(max_size=10) | INT | st.dictionaries(TEXT(max_size=5), JSON, min_size=1),
        "photos": st.lists(
            st.fixed_dictionaries({"value": TEXT(max_size=30), "type": st.just("photo")}), min_size=1
        ),
    }
    attr = draw(st.sampled_from(sorted(wrong)))
    value = draw(wrong[attr])
    if attr == "photos":  # never an http(s) URL of an image: the photo rule refuses it
        value = [{"value": "ftp://" + v["value"], "type": "photo"} for v in value]
    return {"schemas": [USER], "userName": f"ok.{uuid.uuid4().hex[:6]}@example.com", attr: value}


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@st.composite
def bodies_that_are_not_json(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            ["truncated", "utf8", "deep", "deep-in-object", "garbage", "not-object", "big number"]
        )
    )
    if kind == "truncated":
        return json_bytes(draw(user_with_a_bad_user_name()))[: -draw(st.integers(1, 10))]
    if kind == "utf8":  # a JSON string with bytes that are not UTF-8
        junk = draw(st.binary(min_size=1, max_size=8)) + b"\xff\xfe\xc3"
        return b'{"schemas": ["' + USER.encode() + b'"], "userName": "' + junk + b'@example.com"}'
    if kind == "deep":
        return deep(draw(st.integers(600, 100_000)))
    if kind == "deep-in-object":
        levels = draw(st.integers(10, 2_000))
        nested = b'{"a": ' * levels + b"1" + b"}" * levels
        # Under every key some endpoint reads, each time of a wrong type there.
        return b'{"userName": "deep", "name": %s, "filter": %s, "Operations": %s}' % (nested, nested, nested)
    if kind == "big number":
        digits = str(draw(st.integers(min_value=2**64, max_value=10**400))).encode()
        return b'{"userName": "n", "active": %s, "filter": %s, "Operations": %s}' % (digits, digits, digits)
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=200).filter(lambda b: b.strip()[:1] not in (b"{", b"[")))
    return json_bytes(draw(st.lists(JSON, max_size=3) | TEXT(max_size=10) | INT))


LETTERS = st.text(alphabet=string.ascii_letters, min_size=1, max_size=6)
SEGMENT = st.text(alphabet=string.ascii_letters + string.digits + "-._~", min_size=1, max_size=12)
# Filters that cannot parse: a valid start, then something no grammar rule accepts.
FILTER_TAILS = [
    " or 1=1",
    "; DROP TABLE users; --",
    " and (",
    " )",
    " or ''='",
    "' OR '1'='1",
    " union select * from users",
    ' eq "x" eq',
    " zz ",
    " and not",
    " or userName",
]
FILTER_STARTS = [
    'userName eq "{v}"',
    'emails[value co "{v}"',
    'userName sw "{v}"',
    'displayName eq "{v}"',
    'meta.lastModified gt "{v}"',
    'userName eq "{v}" and',
    "userName pr",
]


@st.composite
def bad_filters(draw: st.DrawFn) -> str:
    value = draw(st.text(alphabet=string.ascii_letters + " %_*\\", max_size=15))
    return draw(st.sampled_from(FILTER_STARTS)).format(v=value) + draw(st.sampled_from(FILTER_TAILS))


def bad_patch_ops() -> st.SearchStrategy[list[Any]]:
    not_an_op = TEXT(max_size=10).filter(lambda s: s.lower() not in ("add", "replace", "remove"))
    return st.one_of(
        st.lists(st.fixed_dictionaries({"op": not_an_op, "value": JSON}), min_size=1, max_size=3),
        st.lists(
            st.fixed_dictionaries(
                {
                    "op": st.sampled_from(["replace", "Replace", "add"]),
                    "path": st.just("userName"),
                    "value": NOT_AN_EMAIL,
                }
            ),
            min_size=1,
            max_size=2,
        ),
        st.lists(
            st.fixed_dictionaries(
                {
                    "op": st.sampled_from(["replace", "add"]),
                    "path": st.just("password"),
                    "value": TEXT(min_size=1, max_size=10),
                }
            ),
            min_size=1,
            max_size=1,
        ),
        st.lists(
            st.fixed_dictionaries(
                {
                    "op": st.just("replace"),
                    "path": st.builds(lambda f: f"emails[{f}].value", bad_filters()),
                    "value": TEXT(),
                }
            ),
            min_size=1,
            max_size=1,
        ),
        st.lists(
            st.fixed_dictionaries({"op": st.just("remove")}), min_size=1, max_size=1
        ),  # remove needs a path
        NOT_A_STRING.map(lambda v: v if isinstance(v, list) and v and not isinstance(v[0], dict) else [1]),
    )


@st.composite
def bad_requests(draw: st.DrawFn, user_id: str, group_id: str) -> Bad:
    kind = draw(
        st.sampled_from(
            [
                "post user",
                "post user wrong type",
                "put user",
                "body not json",
                "huge",
                "patch user",
                "patch group",
                "post group",
                "put group",
                "filter",
                "search",
                "bulk",
                "path",
                "method",
                "headers",
                "credential",
                "admin",
            ]
        )
    )
    if kind == "post user":
        return Bad(kind, "POST", "/Users", json_bytes(draw(user_with_a_bad_user_name())))
    if kind == "post user wrong type":
        return Bad(kind, "POST", "/Users", json_bytes(draw(user_with_a_wrong_type())))
    if kind == "put user":
        return Bad(kind, "PUT", f"/Users/{user_id}", json_bytes(draw(user_with_a_bad_user_name())))
    if kind == "body not json":
        target = draw(
            st.sampled_from(
                [
                    ("POST", "/Users"),
                    ("PUT", f"/Users/{user_id}"),
                    ("PATCH", f"/Users/{user_id}"),
                    ("POST", "/Groups"),
                    ("PATCH", f"/Groups/{group_id}"),
                    ("POST", "/Bulk"),
                    ("POST", "/.search"),
                    ("POST", "/Users/.search"),
                ]
            )
        )
        return Bad(kind, *target, draw(bodies_that_are_not_json()))
    if kind == "huge":
        path = "/Users" if draw(st.booleans()) else f"/Users/{user_id}"
        return Bad(kind, "POST" if path == "/Users" else "PUT", path, draw(st.sampled_from(HUGE_BODIES)))
    if kind == "patch user":
        body = {"schemas": [PATCH_OP], "Operations": draw(bad_patch_ops())}
        return Bad(kind, "PATCH", f"/Users/{user_id}", json_bytes(body))
    if kind == "patch group":
        op = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "op": st.just("add"),
                        "path": st.just("members"),
                        "value": st.lists(
                            st.fixed_dictionaries({"value": st.uuids().map(str)}), min_size=1, max_size=3
                        ),
                    }
                ),
                st.fixed_dictionaries(
                    {
                        "op": st.just("add"),
                        "path": st.just("members"),
                        "value": st.lists(
                            st.fixed_dictionaries({"value": NOT_A_STRING | SEGMENT}), min_size=1, max_size=3
                        ),
                    }
                ),
                st.fixed_dictionaries(
                    {"op": st.just("remove"), "path": bad_filters().map(lambda f: f"members[{f}]")}
                ),
                st.fixed_dictionaries(
                    {
                        "op": TEXT(max_size=8).filter(
                            lambda s: s.lower() not in ("add", "replace", "remove")
                        ),
                        "value": JSON,
                    }
                ),
            )
        )
        return Bad(
            kind, "PATCH", f"/Groups/{group_id}", json_bytes({"schemas": [PATCH_OP], "Operations": [op]})
        )
    if kind == "post group":
        body = {
            "schemas": [GROUP],
            "displayName": draw(NOT_A_STRING | st.just("no such team " + uuid.uuid4().hex) | LONG),
        }
        return Bad(kind, "POST", "/Groups", json_bytes(body))
    if kind == "put group":
        members = draw(
            st.lists(
                st.fixed_dictionaries({"value": st.uuids().map(str) | NOT_A_STRING}), min_size=1, max_size=4
            )
        )
        return Bad(
            kind,
            "PUT",
            f"/Groups/{group_id}",
            json_bytes({"schemas": [GROUP], "displayName": "g", "members": members}),
        )
    if kind == "filter":
        resource = draw(st.sampled_from(["/Users", "/Groups"]))
        return Bad(kind, "GET", f"{resource}?filter={draw(bad_filters())}")
    if kind == "search":
        body = draw(
            st.one_of(
                st.fixed_dictionaries({"schemas": st.just([SEARCH]), "filter": bad_filters()}),
                st.fixed_dictionaries(
                    {"schemas": st.just([SEARCH]), "count": LETTERS | st.lists(JSON, min_size=1)}
                ),
                st.fixed_dictionaries(
                    {"schemas": st.lists(TEXT(max_size=20), max_size=2), "filter": bad_filters()}
                ),
            )
        )
        return Bad(
            kind,
            "POST",
            draw(st.sampled_from(["/.search", "/Users/.search", "/Groups/.search"])),
            json_bytes(body),
        )
    if kind == "bulk":
        body = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "schemas": st.just([BULK]),
                        "Operations": NOT_A_STRING.filter(lambda v: not isinstance(v, list))
                        | TEXT(max_size=5),
                    }
                ),
                st.fixed_dictionaries(
                    {"schemas": st.lists(TEXT(max_size=20), max_size=2), "Operations": st.just([1])}
                ),
                st.fixed_dictionaries(
                    {
                        "schemas": st.just([BULK]),
                        "failOnErrors": TEXT(min_size=1, max_size=5),
                        "Operations": st.just([None]),
                    }
                ),
                st.integers(1001, 1500).map(
                    lambda n: {
                        "schemas": [BULK],
                        "Operations": [{"method": "DELETE", "path": "/Users/x"}] * n,
                    }
                ),
            )
        )
        return Bad(kind, "POST", "/Bulk", json_bytes(body))
    if kind == "path":
        segments = draw(st.lists(SEGMENT, min_size=1, max_size=4))
        prefix = draw(st.sampled_from(["/Users/", "/Groups/", "/x-", f"/Users/{user_id}/", "/Schemas/x-"]))
        path = prefix + "/".join(segments)
        method = draw(st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "POST"]))
        return Bad(kind, method, path, json_bytes({"schemas": [USER], "userName": "not an email"}))
    if kind == "method":
        target = draw(
            st.sampled_from(
                [
                    ("DELETE", "/Users"),
                    ("PUT", "/Users"),
                    ("PATCH", "/Groups"),
                    ("DELETE", "/ServiceProviderConfig"),
                    ("POST", "/ServiceProviderConfig"),
                    ("PUT", "/Schemas"),
                    ("POST", f"/Users/{user_id}"),
                    ("GET", "/Bulk"),
                    ("GET", "/.search"),
                    ("TRACE", "/Users"),
                    ("POST", "/ResourceTypes"),
                ]
            )
        )
        return Bad(kind, *target, json_bytes({"userName": "x"}))
    if kind == "headers":
        headers = draw(
            st.sampled_from(
                [
                    (("Content-Type", "text/plain"),),
                    (("Content-Type", "application/xml"),),
                    (("If-Match", 'W/"' + "9" * 30 + '"'),),
                    (
                        (
                            "If-Match",
                            draw(st.text(alphabet=string.ascii_letters + '"/,*', min_size=1, max_size=20)),
                        ),
                    ),
                    (("Content-Type", "application/scim+json; charset=latin-1"),),
                    (
                        (
                            "X-Request-Id",
                            draw(st.text(alphabet=string.printable.strip(), min_size=1, max_size=300)),
                        ),
                    ),
                ]
            )
        )
        target = draw(
            st.sampled_from(
                [("POST", "/Users"), ("PUT", f"/Users/{user_id}"), ("PATCH", f"/Users/{user_id}")]
            )
        )
        body = (
            {"schemas": [PATCH_OP], "Operations": [{"op": "nope"}]}
            if target[0] == "PATCH"
            else draw(user_with_a_bad_user_name())
        )
        return Bad(kind, *target, json_bytes(body), headers=headers)
    if kind == "credential":
        credential = draw(st.sampled_from(["none", "wrong"]))
        target = draw(
            st.sampled_from(
                [
                    ("GET", "/Users"),
                    ("POST", "/Users"),
                    ("DELETE", f"/Users/{user_id}"),
                    ("PATCH", f"/Groups/{group_id}"),
                ]
            )
        )
        body = json_bytes({"schemas": [USER], "userName": f"nope.{uuid.uuid4().hex[:6]}@example.com"})
        return Bad(kind, *target, body, credential=credential)
    # admin: a wrong operator key, or a malformed admin payload with the right one
    if draw(st.booleans()):
        return Bad(kind, "POST", "/admin/v1/tenants", json_bytes({"name": "x"}), credential="admin-wrong")
    body = draw(
        st.one_of(
            st.fixed_dictionaries({"name": NOT_A_STRING | st.just("")}),
            st.fixed_dictionaries(
                {"name": st.just("t"), "seats": LETTERS | st.integers(min_value=-(2**63), max_value=-1)}
            ),
        )
    )
    return Bad(kind, "POST", "/admin/v1/tenants", json_bytes(body), credential="admin")


def corpus(user_id: str, group_id: str, n: int) -> list[Bad]:
    """`n` malformed requests from hypothesis, the same ones on every run.

    Drawn in lists of `PER_EXAMPLE`: hypothesis spends most of its time per example, not per draw.
    """
    found: list[Bad] = []

    @settings(
        max_examples=n // PER_EXAMPLE,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(bad_requests(user_id, group_id), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def collect(requests: list[Bad]) -> None:
        found.extend(requests)

    collect()
    return found


CHECKSUM = (
    "SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY {key}), '')) AS h FROM {table} t"
)


async def checksum(db: Any) -> dict[str, tuple[int, str]]:
    """Per table: row count and an md5 of every row in key order."""
    sums = {}
    for table, key in TABLES.items():  # names from the constant above, never from input
        row = await db.fetchrow(CHECKSUM.format(key=key, table=table))
        sums[table] = (row["n"], row["h"])
    return sums


async def test_ten_thousand_malformed_requests_get_only_4xx_and_change_nothing(client, db):
    tenant: Tenant = await make_tenant(client)
    resp = await client.patch(
        f"/admin/v1/tenants/{tenant.id}", json={"rate_limit": {"preset": "off"}}, headers=ADMIN_HEADERS
    )
    assert resp.status == 200, await resp.text()
    user = await post_user(client, tenant)
    member = await post_user(client, tenant)
    group = await make_group(client, tenant, [member["id"]])

    requests = corpus(user["id"], group["id"], REQUESTS)
    assert len(requests) >= REQUESTS * 0.95, len(requests)
    before = await checksum(db)

    answers: list[tuple[Bad, int, str]] = []
    gate = asyncio.Semaphore(CONCURRENCY)
    credentials = {
        "tenant": {"Authorization": f"Bearer {tenant.token}"},
        "none": {},
        "wrong": {"Authorization": "Bearer " + uuid.uuid4().hex},
        "admin": ADMIN_HEADERS,
        "admin-wrong": {"Authorization": "Bearer " + uuid.uuid4().hex},
    }

    async def send(bad: Bad) -> None:
        path = bad.path if bad.path.startswith("/admin") else "/scim/v2" + bad.path
        headers = {
            "Content-Type": "application/scim+json",
            **credentials[bad.credential],
            **dict(bad.headers),
        }
        async with gate:
            resp = await client.request(bad.method, path, data=bad.body, headers=headers)
            text = await resp.text(errors="replace")
        answers.append((bad, resp.status, text[:300]))

    await asyncio.gather(*(send(b) for b in requests))

    wrong = [
        (b.kind, b.method, b.path[:80], status, text)
        for b, status, text in answers
        if not 400 <= status < 500
    ]
    assert not wrong, (len(wrong), Counter((k, s) for k, _, _, s, _ in wrong), wrong[:5])
    assert await checksum(db) == before
    by_kind = Counter(b.kind for b, _, _ in answers)
    assert len(by_kind) == 17 and min(by_kind.values()) > REQUESTS / 40, by_kind
