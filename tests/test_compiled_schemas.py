"""The compiled loaders (schemas/compiled.py) give marshmallow's result or step aside, never another one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from marshmallow import Schema, ValidationError, fields

from schemas.base import ScimSchema, ScimString
from schemas.compiled import NotCompilable, Unsure, compile_schema
from schemas.group import GROUP_SCHEMA_INSTANCE
from schemas.user import ENTERPRISE_SCHEMA, USER_SCHEMA_INSTANCE, load_user

SCHEMAS = {"User": USER_SCHEMA_INSTANCE, "Group": GROUP_SCHEMA_INSTANCE}

OKTA_USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "jane.doe@example.com",
    "name": {"givenName": "Jane", "familyName": "Doe"},
    "emails": [{"primary": True, "value": "jane.doe@example.com", "type": "work"}],
    "displayName": "Jane Doe",
    "locale": "en-US",
    "externalId": "00u1ab2cd3EF4gh5i6j7",
    "groups": [],
    "password": "secret",
    "active": True,
}
ENTRA_USER = {
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_SCHEMA],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_ab6490ee@contoso.com",
    "active": "True",
    "displayName": "BobIsAmazing",
    "title": 7,
    "emails": [{"Primary": "true", "type": "work", "value": "Test_User_fd0ea19b@contoso.com"}],
    "NAME": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
    "phoneNumbers": [{"value": "+1 555 0100", "type": "work"}],
    "photos": [{"value": "https://example.com/jane.jpg", "type": "photo"}],
    ENTERPRISE_SCHEMA.upper(): {"employeeNumber": 42, "department": "Sales", "manager": {"value": "m-1"}},
}


def marshmallow_result(schema: Schema, body: Any) -> dict[str, Any] | None:
    """What marshmallow stores for `body`; None when it refuses it."""
    try:
        return schema.dump(schema.load(body))  # type: ignore[no-any-return]
    except ValidationError:
        return None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_our_schemas_compile(name):
    compile_schema(SCHEMAS[name])


@pytest.mark.parametrize("body", [OKTA_USER, ENTRA_USER], ids=["okta", "entra"])
def test_idp_users_load_compiled_to_what_marshmallow_stores(body):
    compiled = compile_schema(USER_SCHEMA_INSTANCE)(body)
    assert compiled == marshmallow_result(USER_SCHEMA_INSTANCE, body)
    assert "password" not in compiled
    assert compiled["emails"][0]["primary"] is True


@pytest.mark.parametrize(
    "body",
    [
        {**OKTA_USER, "userName": "not an email"},  # the userName validator refuses it
        {**OKTA_USER, "userName": "x" * 300 + "@example.com"},  # over the length limit
        {**OKTA_USER, "active": "maybe"},
        {**OKTA_USER, "active": 1},  # marshmallow's call: a number as a boolean
        {**OKTA_USER, "displayName": True},
        {**OKTA_USER, "name": "Jane Doe"},
        {**OKTA_USER, "emails": [None]},
        {**OKTA_USER, "emails": {"value": "jane@example.com"}},
        {**OKTA_USER, "nickName": "a\x00b"},
        {"displayName": "no userName"},
        ["not", "an", "object"],
    ],
)
def test_anything_unusual_is_left_to_marshmallow(body):
    with pytest.raises(Unsure):
        compile_schema(USER_SCHEMA_INSTANCE)(body)


def test_an_invalid_user_still_gets_marshmallow_messages():
    with pytest.raises(ValidationError) as caught:
        load_user({**OKTA_USER, "userName": "not an email", "active": "maybe"})
    assert set(caught.value.messages) == {"userName", "active"}


def test_a_schema_with_a_field_kind_it_does_not_know_is_not_compiled():
    class WithNumber(ScimSchema):
        name = ScimString()
        age = fields.Integer()

    with pytest.raises(NotCompilable):
        compile_schema(WithNumber())


# Generated bodies: the schemas' own attribute names in any case, values of every JSON type, nested
# objects built from the nested schemas, unknown attributes and read-only ones.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "true",
            " FALSE ",
            "1",
            "0",
            "yes",
            "a\x00b",
            "x" * 600,
            "jane@example.com",
            "https://example.com/a.png",
            "ftp://example.com/a.png",
            "photo",
            "Photo",
        ]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def spelled(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper()])


texts = st.text(max_size=12) | st.sampled_from(
    ["jane@example.com", "https://example.com/a.png", "photo", "a\x00b", "x" * 600]
)
booleans = st.booleans() | st.sampled_from(["true", "False", " TRUE ", "1", "0", "yes", 1, 0.0, 2])


def value_for(field: fields.Field, depth: int) -> st.SearchStrategy[Any]:
    """Mostly what the field takes, sometimes anything at all."""
    if depth > 0 and isinstance(field, fields.Nested):
        expected = body_for(field.schema, depth - 1)
    elif depth > 0 and isinstance(field, fields.List):
        expected = st.lists(value_for(field.inner, depth), max_size=3)
    elif isinstance(field, fields.Boolean):
        expected = booleans
    else:
        expected = texts | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    return st.one_of(expected, expected, expected, json_values)


def body_for(schema: Schema, depth: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    declared = [(f.data_key or name, f) for name, f in schema.fields.items()]
    attribute = st.sampled_from(declared).flatmap(
        lambda kf: st.tuples(spelled(kf[0]), value_for(kf[1], depth))
    )
    unknown = st.tuples(st.sampled_from(["schemas", "id", "meta", "unknownThing"]), json_values)
    return st.lists(attribute | unknown, max_size=8).map(dict)


def check_same(schema: Schema, body: Any) -> None:
    expected = marshmallow_result(schema, body)
    try:
        compiled = compile_schema(schema)(body)
    except Unsure:
        return  # left to marshmallow: whatever it says is the answer
    assert expected is not None, f"compiled accepted a body marshmallow refuses: {body!r}"
    assert compiled == expected


@hsettings(max_examples=400, deadline=None)
@given(body=body_for(USER_SCHEMA_INSTANCE), user_name=st.sampled_from(["jane@example.com", None]))
def test_compiled_user_loader_agrees_with_marshmallow(body, user_name):
    if user_name is not None:
        body = {**body, "userName": user_name}  # without one, every body would be refused
    check_same(USER_SCHEMA_INSTANCE, body)


@hsettings(max_examples=150, deadline=None)
@given(body=body_for(GROUP_SCHEMA_INSTANCE))
def test_compiled_group_loader_agrees_with_marshmallow(body):
    check_same(GROUP_SCHEMA_INSTANCE, body)
