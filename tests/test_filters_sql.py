"""Generated filters select the same users in PostgreSQL (compile_filter) as in memory (matches).

Needs a PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth); creates and drops its own database.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.user import ENTERPRISE_SCHEMA, PRODUCT_SCHEMA, USER_RESOURCE
from scimsvc.scim.filters.match import matches
from scimsvc.scim.filters.parse import parse_filter
from scimsvc.scim.filters.sql import compile_filter
from scimsvc.scim.filters.tree import And, Compare, Node, Not, Or, Present, ValuePath
from scimsvc.store.users import ELEMENT_INDEXES
from scimsvc.store.users import RESOURCE_FILTER_COLUMNS as USER_COLUMNS

PG = {"host": os.environ.get("SCIMSVC_TEST_PGHOST", "127.0.0.1"), "port": 5432, "user": "postgres"}

CREATE_TABLE = """
CREATE TABLE u (
    id uuid PRIMARY KEY, user_name text NOT NULL, external_id text, display_name text,
    active boolean NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL,
    resource jsonb NOT NULL
)
"""
INSERT = "INSERT INTO u VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)"

# --- Data: 20 users that differ in case, presence, emptiness and LIKE metacharacters -------------------

WORDS = ["alice", "Bob", "CAROL", "d%n", "e_f", "Émile", "back\\slash", "x.com", ""]
DOMAINS = ["x.com", "X.COM", "example.org", "a_b.net", "50%.io"]
BASE = datetime(2024, 1, 1, tzinfo=UTC)
INSTANTS = [
    BASE + timedelta(days=d, seconds=s, microseconds=us)
    for d, s, us in [(0, 0, 0), (0, 0, 500_000), (31, 3600, 0), (-200, 59, 1), (150, 0, 0), (366, 1, 999_999)]
]


def make_users() -> list[dict[str, Any]]:
    rng = random.Random(20240101)
    users = []
    for i in range(20):
        word = WORDS[i % len(WORDS)] or "zed"
        user_name = f"{word}{i}@{DOMAINS[i % len(DOMAINS)]}"
        resource: dict[str, Any] = {"userName": user_name, "active": i % 3 != 0}
        if i % 4 != 0:
            resource["externalId"] = rng.choice(["Ext-1", "ext-1", f"EXT-{i}", "e_f", ""])
        if i % 5 != 1:
            resource["displayName"] = rng.choice(["Alice Smith", "alice smith", "Bob", "", "Émile", "d%n"])
        if i % 2:
            resource["title"] = rng.choice(["Engineer", "engineer", "", "R&D lead", "e_f"])
        if i % 3 != 2:
            resource["name"] = {
                k: rng.choice(WORDS) for k in rng.sample(["givenName", "familyName"], rng.randint(1, 2))
            }
        emails = []
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            email: dict[str, Any] = {"value": f"{rng.choice(WORDS)}@{rng.choice(DOMAINS)}"}
            if rng.random() < 0.7:
                email["type"] = rng.choice(["work", "home", "Work"])
            if rng.random() < 0.5:
                email["primary"] = rng.random() < 0.5
            if rng.random() < 0.15:
                del email["value"]
            emails.append(email)
        if emails:
            resource["emails"] = emails
        if i % 2 == 0:
            resource[ENTERPRISE_SCHEMA] = {
                "department": rng.choice(["R&D", "r&d", "Sales", ""]),
                **({"employeeNumber": str(rng.choice([42, 7, 701984]))} if rng.random() < 0.6 else {}),
                **({"manager": {"value": rng.choice(["boss", "BOSS", "x"])}} if rng.random() < 0.5 else {}),
            }
        if i % 3 == 1:
            resource[PRODUCT_SCHEMA] = {
                "provisionedAt": rng.choice(INSTANTS).isoformat().replace("+00:00", "Z")
            }
        users.append(
            {
                "id": uuid.UUID(int=rng.getrandbits(128), version=4),
                "created": INSTANTS[i % len(INSTANTS)],
                "updated": INSTANTS[(i * 5 + 1) % len(INSTANTS)],
                "resource": resource,
            }
        )
    return users


USERS = make_users()


def rendered(user: dict[str, Any]) -> dict[str, Any]:
    """The user as the API renders it: the resource plus id and meta."""
    meta = {
        "resourceType": "User",
        "created": user["created"].isoformat(),
        "lastModified": user["updated"].isoformat(),
    }
    return {**user["resource"], "id": str(user["id"]), "meta": meta}


# --- Filters -----------------------------------------------------------------------------------------

IDS = [str(u["id"]) for u in USERS[:3]]
STRINGS = [
    "alice",
    "ALICE",
    "bob",
    "x.com",
    "X.Com",
    "%",
    "_",
    "e_f",
    "d%n",
    "\\",
    "back\\slash",
    "",
    "Engineer",
    "r&d",
    "émile",
    "ÉMILE",
    "ext-1",
    "Ext-1",
    "42",
    "7",
    "boss",
    "work",
    "m",
    "B",
    IDS[0],
    IDS[1].upper(),
    IDS[2][:8],
    "not-a-uuid",
]
STRING_ATTRS = [
    "id",
    "userName",
    "externalId",
    "displayName",
    "title",
    "name.givenName",
    "name.familyName",
    "emails",
    "emails.value",
    "emails.type",
    f"{ENTERPRISE_SCHEMA}:department",
    f"{ENTERPRISE_SCHEMA}:employeeNumber",
    f"{ENTERPRISE_SCHEMA}:manager.value",
]
DATE_ATTRS = ["meta.created", "meta.lastModified", f"{PRODUCT_SCHEMA}:provisionedAt"]
DATES = [
    *(i.isoformat().replace("+00:00", "Z") for i in INSTANTS),
    (INSTANTS[1] + timedelta(hours=2)).isoformat().replace("+00:00", "+02:00"),
    "2024-01-01",
    "2024-01-01T00:00:00",
    "2024-06-01T12:00:00-07:00",
]
ALL_OPS = ["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]
ORDER_OPS = ["eq", "ne", "gt", "ge", "lt", "le"]
PRESENT_ATTRS = [
    *STRING_ATTRS,
    *DATE_ATTRS,
    "active",
    "emails.primary",
    "name",
    "meta",
    f"{ENTERPRISE_SCHEMA}:manager",
]

literal_strings = st.sampled_from(STRINGS)
string_leaves = st.builds(
    Compare,
    st.sampled_from(STRING_ATTRS),
    st.sampled_from(ALL_OPS),
    st.one_of(literal_strings, st.sampled_from([42, 7, True])),
)
bool_leaves = st.builds(
    Compare,
    st.sampled_from(["active", "emails.primary"]),
    st.sampled_from(["eq", "ne"]),
    st.sampled_from([True, False, "true", "FALSE"]),
)
date_leaves = st.builds(
    Compare, st.sampled_from(DATE_ATTRS), st.sampled_from(ORDER_OPS), st.sampled_from(DATES)
)
null_leaves = st.builds(Compare, st.sampled_from(PRESENT_ATTRS), st.sampled_from(["eq", "ne"]), st.none())
present_leaves = st.builds(Present, st.sampled_from(PRESENT_ATTRS))


def element_filters() -> st.SearchStrategy[Node]:
    leaf = st.one_of(
        st.builds(
            Compare, st.sampled_from(["value", "type", "display"]), st.sampled_from(ALL_OPS), literal_strings
        ),
        st.builds(Compare, st.just("primary"), st.sampled_from(["eq", "ne"]), st.booleans()),
        st.builds(
            Compare, st.sampled_from(["value", "type", "primary"]), st.sampled_from(["eq", "ne"]), st.none()
        ),
        st.builds(Present, st.sampled_from(["value", "type", "primary"])),
    )
    return st.recursive(
        leaf,
        lambda c: st.one_of(st.builds(And, c, c), st.builds(Or, c, c), st.builds(Not, c)),
        max_leaves=3,
    )


value_paths = st.one_of(
    st.builds(ValuePath, st.just("emails"), element_filters()),
    st.builds(
        ValuePath,
        st.just("name"),
        st.builds(Compare, st.just("givenName"), st.sampled_from(ALL_OPS), literal_strings),
    ),
    st.builds(
        ValuePath,
        st.just("meta"),
        st.builds(Compare, st.just("lastModified"), st.sampled_from(ORDER_OPS), st.sampled_from(DATES)),
    ),
)
FILTERS = st.recursive(
    st.one_of(string_leaves, bool_leaves, date_leaves, null_leaves, present_leaves, value_paths),
    lambda c: st.one_of(st.builds(And, c, c), st.builds(Or, c, c), st.builds(Not, c)),
    max_leaves=6,
)


def render(node: Node) -> str:
    """The filter as text, every sub-expression parenthesized so that it parses back to the same tree."""
    if isinstance(node, Compare):
        return f"{node.attr} {node.op} {json.dumps(node.value, ensure_ascii=False)}"
    if isinstance(node, Present):
        return f"{node.attr} pr"
    if isinstance(node, And | Or):
        word = "and" if isinstance(node, And) else "or"
        return f"({render(node.left)}) {word} ({render(node.right)})"
    if isinstance(node, Not):
        return f"not ({render(node.expr)})"
    return f"{node.attr}[{render(node.filter)}]"


# --- The database ------------------------------------------------------------------------------------


@dataclass
class Database:
    loop: asyncio.AbstractEventLoop
    conn: asyncpg.Connection

    def ids(self, where: str, params: list[Any]) -> set[str]:
        rows = self.loop.run_until_complete(self.conn.fetch(f"SELECT id FROM u WHERE {where}", *params))  # noqa: S608
        return {str(row["id"]) for row in rows}


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    loop = asyncio.new_event_loop()
    name = f"scimsvc_filtertest_{secrets.token_hex(6)}"
    try:
        admin = loop.run_until_complete(asyncpg.connect(**PG, database="postgres", timeout=60))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        loop.close()
        pytest.skip(f"no PostgreSQL at {PG['host']}:5432: {exc}")
    conn: asyncpg.Connection | None = None
    try:
        loop.run_until_complete(admin.execute(f'CREATE DATABASE "{name}"'))
        conn = loop.run_until_complete(asyncpg.connect(**PG, database=name, timeout=60))
        loop.run_until_complete(conn.execute(CREATE_TABLE))
        rows = [
            (
                user["id"],
                user["resource"]["userName"],
                user["resource"].get("externalId"),
                user["resource"].get("displayName"),
                user["resource"]["active"],
                user["created"],
                user["updated"],
                json.dumps(user["resource"]),
            )
            for user in USERS
        ]
        loop.run_until_complete(conn.executemany(INSERT, rows))
        yield Database(loop, conn)
    finally:
        if conn is not None:
            loop.run_until_complete(conn.close())
        loop.run_until_complete(admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        loop.run_until_complete(admin.close())
        loop.close()


def in_memory(node: Node) -> set[str]:
    return {str(user["id"]) for user in USERS if matches(node, rendered(user), USER_RESOURCE)}


def in_sql(database: Database, node: Node) -> set[str]:
    params: list[Any] = []
    # With the emails.value index narrowing too: it must never change the answer.
    where = compile_filter(
        node,
        USER_RESOURCE,
        columns=USER_COLUMNS,
        resource_column="u.resource",
        params=params,
        element_indexes=ELEMENT_INDEXES,
    )
    return database.ids(where, params)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(FILTERS)
def test_generated_filters_select_the_same_users_in_sql_and_in_memory(database: Database, node: Node) -> None:
    parsed = parse_filter(render(node))
    assert parsed == node
    assert in_sql(database, parsed) == in_memory(parsed)


@pytest.mark.parametrize(
    "text",
    [
        'userName co "%"',
        'userName sw "e_f"',
        'userName co "\\\\"',
        'displayName eq "ÉMILE"',
        'title ne "engineer"',
        'not (title eq "engineer")',
        "title eq null",
        'externalId eq "ext-1"',
        f'id eq "{IDS[1].upper()}"',
        'id eq "not-a-uuid" or id ne "not-a-uuid"',
        'emails[type eq "work" and value co "x.com"]',
        "emails[not (primary eq true)]",
        "emails.value eq null",
        "name pr and not (emails pr)",
        f"{ENTERPRISE_SCHEMA}:employeeNumber eq 42",
        f'{PRODUCT_SCHEMA}:provisionedAt ge "2024-01-01T00:00:00.5Z"',
        f'meta.lastModified gt "{INSTANTS[0].isoformat()}"',
        'userName gt "B"',
    ],
)
def test_hand_picked_filters_select_the_same_users_in_sql_and_in_memory(
    database: Database, text: str
) -> None:
    node = parse_filter(text)
    expected = in_memory(node)
    assert in_sql(database, node) == expected
    assert in_sql(database, Not(node)) == {str(u["id"]) for u in USERS} - expected
