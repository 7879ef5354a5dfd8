"""SCIM PATCH: parsing PatchOp bodies and applying them to a stored User (RFC 7644 §3.5.2, IdP quirks)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalog import Attr, ResourceTypeDef, SchemaDef
from schemas.user import ENTERPRISE_SCHEMA, PRODUCT_SCHEMA, USER_RESOURCE, load_user
from scimsvc.scim.errors import ScimError
from scimsvc.scim.patch import MAX_OPERATIONS, PatchOperation, apply_patch, parse_patch_request

PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ENT = ENTERPRISE_SCHEMA

BASE: dict[str, Any] = {
    "userName": "jo@example.com",
    "name": {"givenName": "Joanna", "familyName": "Smith"},
    "displayName": "Jo Smith",
    "active": True,
    "emails": [{"value": "jo@home.example", "type": "home", "primary": True}],
    "roles": [{"value": "user", "primary": True}],
    ENT: {"department": "Sales", "manager": {"value": "boss-id"}},
}


def body(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def patch(resource: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    """Parse a PatchOp body made of `operations` and apply it to `resource` as a User."""
    return apply_patch(resource, parse_patch_request(body(*operations)), USER_RESOURCE)


def error_of(resource: dict[str, Any], *operations: dict[str, Any]) -> ScimError:
    with pytest.raises(ScimError) as info:
        patch(resource, *operations)
    return info.value


def parse_error(raw: Any) -> ScimError:
    with pytest.raises(ScimError) as info:
        parse_patch_request(raw)
    return info.value


# A throwaway Group-like resource type: multi-valued complex `members`, an immutable attribute.
MEMBERS = Attr("members", type="complex", multi_valued=True, sub_attributes=(Attr("value"), Attr("display")))
GROUP = ResourceTypeDef(
    name="Group",
    endpoint="/Groups",
    description="test group",
    core=SchemaDef(
        id="urn:ietf:params:scim:schemas:core:2.0:Group",
        name="Group",
        description="test group",
        attributes=(Attr("displayName"), MEMBERS, Attr("badge", mutability="immutable")),
    ),
)


def patch_group(resource: dict[str, Any], *operations: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(resource, parse_patch_request(body(*operations)), GROUP)


# ---------------------------------------------------------------------------------------- parsing


def test_okta_deactivate_body_parses_to_one_replace_without_path() -> None:
    ops = parse_patch_request(body({"op": "replace", "value": {"active": False}}))
    assert ops == [PatchOperation(op="replace", path=None, value={"active": False})]


def test_op_names_and_body_keys_are_case_insensitive() -> None:
    ops = parse_patch_request(
        {
            "operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"OP": "ADD", "Path": "title", "Value": "Boss"},
                {"op": "Remove", "path": "nickName"},
            ]
        }
    )
    assert [(o.op, o.path, o.value) for o in ops] == [
        ("replace", "active", "False"),
        ("add", "title", "Boss"),
        ("remove", "nickName", None),
    ]


def test_body_without_schemas_is_accepted() -> None:
    assert parse_patch_request({"Operations": [{"op": "add", "path": "title", "value": "x"}]})


def test_body_whose_schemas_lack_patchop_is_invalid_syntax() -> None:
    err = parse_error({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "Operations": []})
    assert (err.status, err.scim_type) == (400, "invalidSyntax")
    assert PATCH_OP in err.detail


def test_empty_operations_is_a_valid_no_op() -> None:
    assert parse_patch_request(body()) == []
    assert apply_patch(BASE, [], USER_RESOURCE) == BASE


@pytest.mark.parametrize("raw", [None, [], "Operations", 42])
def test_body_that_is_not_an_object_is_invalid_syntax(raw: Any) -> None:
    err = parse_error(raw)
    assert (err.status, err.scim_type) == (400, "invalidSyntax")


def test_body_without_operations_is_invalid_syntax_with_an_example() -> None:
    err = parse_error({"schemas": [PATCH_OP], "op": "replace", "value": {"active": False}})
    assert (err.status, err.scim_type) == (400, "invalidSyntax")
    assert '"Operations"' in err.detail and "op" in err.detail


def test_operations_that_is_not_a_list_is_invalid_syntax() -> None:
    err = parse_error({"Operations": {"op": "add", "path": "title", "value": "x"}})
    assert (err.status, err.scim_type) == (400, "invalidSyntax")
    assert "list" in err.detail


def test_unknown_op_is_invalid_syntax_naming_op_and_index() -> None:
    err = parse_error(body({"op": "add", "path": "title", "value": "x"}, {"op": "move", "path": "title"}))
    assert (err.status, err.scim_type) == (400, "invalidSyntax")
    assert "'move'" in err.detail and "Operations[1]" in err.detail


def test_operation_that_is_not_an_object_is_invalid_syntax() -> None:
    err = parse_error(body("replace"))  # type: ignore[arg-type]
    assert (err.status, err.scim_type) == (400, "invalidSyntax")
    assert "Operations[0]" in err.detail


def test_path_that_is_not_a_string_is_invalid_syntax() -> None:
    err = parse_error(body({"op": "add", "path": ["title"], "value": "x"}))
    assert (err.status, err.scim_type) == (400, "invalidSyntax")


def test_empty_path_means_no_path() -> None:
    [op] = parse_patch_request(body({"op": "replace", "path": "", "value": {"active": False}}))
    assert op.path is None


def test_remove_without_path_is_no_target() -> None:
    err = parse_error(body({"op": "remove", "value": {"title": "x"}}))
    assert (err.status, err.scim_type) == (400, "noTarget")


@pytest.mark.parametrize("op", ["add", "replace"])
def test_add_or_replace_without_value_is_invalid_syntax(op: str) -> None:
    err = parse_error(body({"op": op, "path": "title"}))
    assert (err.status, err.scim_type) == (400, "invalidSyntax")
    assert "value" in err.detail


def test_more_than_ten_thousand_operations_is_413() -> None:
    ops = [{"op": "replace", "path": "title", "value": str(i)} for i in range(MAX_OPERATIONS + 1)]
    err = parse_error(body(*ops))
    assert err.status == 413 and err.scim_type is None
    err = error_of_apply([PatchOperation("replace", "title", "x")] * (MAX_OPERATIONS + 1))
    assert err.status == 413


def test_ten_thousand_operations_are_accepted() -> None:
    ops = [{"op": "replace", "path": "title", "value": str(i)} for i in range(MAX_OPERATIONS)]
    assert patch(BASE, *ops)["title"] == str(MAX_OPERATIONS - 1)


def error_of_apply(operations: list[PatchOperation]) -> ScimError:
    with pytest.raises(ScimError) as info:
        apply_patch(BASE, operations, USER_RESOURCE)
    return info.value


# ---------------------------------------------------------------------------------------- IdP shapes


def test_okta_deactivation_sets_active_false_and_keeps_everything_else() -> None:
    result = apply_patch(
        BASE,
        parse_patch_request(
            {"schemas": [PATCH_OP], "Operations": [{"op": "replace", "value": {"active": False}}]}
        ),
        USER_RESOURCE,
    )
    assert result == {**BASE, "active": False}


ENTRA_BODY: dict[str, Any] = {
    "schemas": [PATCH_OP],
    "Operations": [
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "new@x.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Jo"},
        {"op": "Add", "path": f"{ENT}:manager", "value": "abc-id"},
        {"op": "Remove", "path": f"{ENT}:manager"},
        {"op": "Replace", "path": 'addresses[type eq "work"].streetAddress', "value": "1 Main"},
        {"op": "Add", "path": "roles", "value": [{"value": "admin", "primary": "True"}]},
    ],
}


def test_entra_request_applies_every_operation_in_order() -> None:
    result = apply_patch(BASE, parse_patch_request(ENTRA_BODY), USER_RESOURCE)
    assert result == {
        "userName": "jo@example.com",
        "name": {"givenName": "Jo", "familyName": "Smith"},
        "displayName": "Jo Smith",
        "active": "False",  # kept as sent; the caller's re-validation makes it a boolean
        "emails": [
            {"value": "jo@home.example", "type": "home", "primary": True},
            {"type": "work", "value": "new@x.com"},
        ],
        "addresses": [{"type": "work", "streetAddress": "1 Main"}],
        "roles": [{"value": "user", "primary": False}, {"value": "admin", "primary": "True"}],
        ENT: {"department": "Sales"},
    }


def test_entra_result_passes_user_revalidation_with_string_booleans_converted() -> None:
    loaded = load_user(apply_patch(BASE, parse_patch_request(ENTRA_BODY), USER_RESOURCE))
    assert loaded["active"] is False
    assert {"value": "admin", "primary": True} in loaded["roles"]


def test_entra_sets_manager_with_a_bare_id() -> None:
    result = patch(BASE, {"op": "Add", "path": f"{ENT}:manager", "value": "abc-id"})
    assert result[ENT]["manager"] == {"value": "abc-id"}


def test_entra_add_work_email_value_updates_the_existing_work_email() -> None:
    user = {**BASE, "emails": [{"value": "old@x.com", "type": "work"}, {"value": "h@x.com", "type": "home"}]}
    result = patch(user, {"op": "Add", "path": 'emails[type eq "work"].value', "value": "new@x.com"})
    assert result["emails"] == [{"value": "new@x.com", "type": "work"}, {"value": "h@x.com", "type": "home"}]


def test_entra_replace_with_filtered_sub_attribute_creates_the_missing_element() -> None:
    result = patch(BASE, {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "w@x.com"})
    assert result["emails"][-1] == {"type": "work", "value": "w@x.com"}


def test_filtered_add_creates_an_element_from_all_eq_comparisons() -> None:
    result = patch(
        BASE,
        {"op": "add", "path": 'phoneNumbers[type eq "work" and display eq "desk"].value', "value": "+1 555"},
    )
    assert result["phoneNumbers"] == [{"type": "work", "display": "desk", "value": "+1 555"}]


# ------------------------------------------------------------------------------------------------ add


def test_add_simple_attribute_sets_it() -> None:
    assert patch(BASE, {"op": "add", "path": "title", "value": "CTO"})["title"] == "CTO"


def test_add_to_complex_attribute_merges_sub_attributes() -> None:
    result = patch(BASE, {"op": "add", "path": "name", "value": {"middleName": "Q", "givenName": "Jo"}})
    assert result["name"] == {"givenName": "Jo", "familyName": "Smith", "middleName": "Q"}


def test_add_to_multi_valued_appends_and_skips_duplicates() -> None:
    result = patch(
        BASE,
        {
            "op": "add",
            "path": "emails",
            "value": [{"value": "jo@home.example", "type": "home", "primary": True}, {"value": "b@x.com"}],
        },
    )
    assert result["emails"] == [BASE["emails"][0], {"value": "b@x.com"}]


def test_add_single_item_to_multi_valued_appends_it() -> None:
    result = patch(BASE, {"op": "add", "path": "entitlements", "value": {"value": "pro"}})
    assert result["entitlements"] == [{"value": "pro"}]


def test_add_primary_element_demotes_the_previous_primary() -> None:
    result = patch(BASE, {"op": "add", "path": "emails", "value": [{"value": "w@x.com", "primary": True}]})
    assert result["emails"] == [
        {"value": "jo@home.example", "type": "home", "primary": False},
        {"value": "w@x.com", "primary": True},
    ]


def test_add_filtered_sub_attribute_sets_it_on_every_matching_element() -> None:
    user = {**BASE, "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x", "type": "WORK"}]}
    result = patch(user, {"op": "add", "path": 'emails[type eq "work"].display', "value": "Work"})
    assert [e.get("display") for e in result["emails"]] == ["Work", "Work"]


@pytest.mark.parametrize(
    "path",
    [
        'emails[type ne "home"].value',
        'emails[type eq "work" or type eq "other"].value',
        "emails[value pr].type",
    ],
)
def test_filtered_add_with_a_filter_that_describes_no_element_is_no_target(path: str) -> None:
    user = {**BASE, "emails": [{"type": "home"}]}
    err = error_of(user, {"op": "add", "path": path, "value": "x"})
    assert (err.status, err.scim_type) == (400, "noTarget")


def test_add_without_path_accepts_dotted_and_urn_keys() -> None:
    result = patch(
        BASE,
        {
            "op": "add",
            "value": {
                "schemas": [ENT],
                "name.givenName": "Jo",
                f"{ENT}:department": "R&D",
                f"{ENT}:manager": "abc-id",
                "urn:ietf:params:scim:schemas:core:2.0:User:title": "CTO",
                "nickName": "JJ",
            },
        },
    )
    assert result["name"] == {"givenName": "Jo", "familyName": "Smith"}
    assert result[ENT] == {"department": "R&D", "manager": {"value": "abc-id"}}
    assert (result["title"], result["nickName"]) == ("CTO", "JJ")
    assert "schemas" not in result


def test_add_without_path_merges_an_extension_object() -> None:
    result = patch(BASE, {"op": "add", "value": {ENT: {"costCenter": "42", "manager": {"value": "m2"}}}})
    assert result[ENT] == {"department": "Sales", "costCenter": "42", "manager": {"value": "m2"}}


def test_add_without_path_creates_a_missing_extension() -> None:
    user = {k: v for k, v in BASE.items() if k != ENT}
    assert patch(user, {"op": "add", "value": {f"{ENT}:division": "EU"}})[ENT] == {"division": "EU"}


def test_add_without_path_ignores_unknown_and_read_only_keys() -> None:
    result = patch(
        BASE,
        {
            "op": "add",
            "value": {
                "id": "x",
                "meta": {"resourceType": "User"},
                "groups": [{"value": "g"}],
                PRODUCT_SCHEMA: {"provisioningState": "provisioned"},
                f"{PRODUCT_SCHEMA}:provisioningState": "provisioned",
                "favouriteColour": "blue",
                "urn:example:unknown:1.0:User:x": 1,
                'emails[type eq "work"': "broken",
                "title": "CTO",
            },
        },
    )
    assert result == {**BASE, "title": "CTO"}


def test_add_without_path_needs_an_object_value() -> None:
    err = error_of(BASE, {"op": "add", "value": "CTO"})
    assert (err.status, err.scim_type) == (400, "invalidSyntax")


def test_add_with_path_to_bare_extension_urn_merges_into_it() -> None:
    result = patch(BASE, {"op": "add", "path": ENT, "value": {"division": "EU"}})
    assert result[ENT] == {"department": "Sales", "manager": {"value": "boss-id"}, "division": "EU"}


# -------------------------------------------------------------------------------------------- replace


def test_replace_without_path_keeps_sub_attributes_not_given() -> None:
    result = patch(BASE, {"op": "replace", "value": {"name": {"givenName": "Jo"}, "displayName": "Jo S"}})
    assert result["name"] == {"givenName": "Jo", "familyName": "Smith"}
    assert result["displayName"] == "Jo S"


def test_replace_without_path_replaces_multi_valued_attributes_and_urn_keys() -> None:
    result = patch(
        BASE,
        {"op": "replace", "value": {"emails": [{"value": "n@x.com"}], f"{ENT}:department": "Ops"}},
    )
    assert result["emails"] == [{"value": "n@x.com"}]
    assert result[ENT]["department"] == "Ops"


def test_replace_without_path_needs_an_object_value() -> None:
    err = error_of(BASE, {"op": "replace", "value": [{"active": False}]})
    assert (err.status, err.scim_type) == (400, "invalidSyntax")


def test_replace_simple_attribute() -> None:
    assert patch(BASE, {"op": "replace", "path": "displayName", "value": "J"})["displayName"] == "J"


def test_replace_whole_multi_valued_attribute() -> None:
    result = patch(BASE, {"op": "replace", "path": "roles", "value": [{"value": "admin"}, {"value": "dev"}]})
    assert result["roles"] == [{"value": "admin"}, {"value": "dev"}]


def test_replace_complex_attribute_merges_the_given_sub_attributes() -> None:
    result = patch(BASE, {"op": "replace", "path": "name", "value": {"familyName": "Jones"}})
    assert result["name"] == {"givenName": "Joanna", "familyName": "Jones"}


def test_replace_filtered_element_merges_an_object_into_matching_elements() -> None:
    result = patch(
        BASE, {"op": "replace", "path": 'emails[type eq "home"]', "value": {"value": "new@home.example"}}
    )
    assert result["emails"] == [{"value": "new@home.example", "type": "home", "primary": True}]


def test_replace_filtered_element_with_nothing_matching_is_no_target() -> None:
    err = error_of(BASE, {"op": "replace", "path": 'emails[type eq "work"]', "value": {"value": "w@x"}})
    assert (err.status, err.scim_type) == (400, "noTarget")
    assert 'emails[type eq "work"]' in err.detail


def test_replace_extension_attribute_by_urn_path() -> None:
    result = patch(BASE, {"op": "replace", "path": f"{ENT}:department", "value": "Ops"})
    assert result[ENT]["department"] == "Ops"


def test_replace_sub_attribute_of_extension_complex_attribute() -> None:
    result = patch(BASE, {"op": "replace", "path": f"{ENT}:manager.value", "value": "m3"})
    assert result[ENT]["manager"] == {"value": "m3"}


# --------------------------------------------------------------------------------------------- remove


def test_remove_attribute() -> None:
    assert "displayName" not in patch(BASE, {"op": "remove", "path": "displayName"})


def test_remove_attribute_that_is_not_set_is_fine() -> None:
    assert patch(BASE, {"op": "remove", "path": "nickName"}) == BASE


def test_remove_sub_attribute() -> None:
    assert patch(BASE, {"op": "remove", "path": "name.familyName"})["name"] == {"givenName": "Joanna"}


def test_remove_last_sub_attribute_removes_the_complex_attribute() -> None:
    user = {**BASE, "name": {"givenName": "Jo"}}
    assert "name" not in patch(user, {"op": "remove", "path": "name.givenName"})


def test_remove_filtered_elements() -> None:
    user = {**BASE, "emails": [{"value": "a", "type": "work"}, {"value": "b", "type": "home"}]}
    result = patch(user, {"op": "remove", "path": 'emails[type eq "work"]'})
    assert result["emails"] == [{"value": "b", "type": "home"}]


def test_remove_filtered_elements_with_nothing_matching_is_fine() -> None:
    assert patch(BASE, {"op": "remove", "path": 'emails[type eq "work"]'}) == BASE


def test_remove_sub_attribute_of_filtered_elements() -> None:
    result = patch(BASE, {"op": "remove", "path": 'emails[type eq "home"].primary'})
    assert result["emails"] == [{"value": "jo@home.example", "type": "home"}]


def test_remove_that_empties_a_list_deletes_the_attribute() -> None:
    assert "emails" not in patch(BASE, {"op": "remove", "path": 'emails[type eq "home"]'})


def test_remove_last_extension_attribute_removes_the_extension() -> None:
    user = {**BASE, ENT: {"manager": {"value": "boss-id"}}}
    assert ENT not in patch(user, {"op": "Remove", "path": f"{ENT}:manager"})


def test_remove_bare_extension_urn_removes_the_extension() -> None:
    assert ENT not in patch(BASE, {"op": "remove", "path": ENT})


def test_entra_remove_members_with_a_value_list_removes_only_those_members() -> None:
    group = {
        "displayName": "G",
        "members": [{"value": "id1"}, {"value": "id2", "display": "Two"}, {"value": "id3"}],
    }
    result = patch_group(
        group, {"op": "Remove", "path": "members", "value": [{"value": "id1"}, {"value": "id3"}]}
    )
    assert result["members"] == [{"value": "id2", "display": "Two"}]


def test_remove_members_value_list_compares_values_as_strings() -> None:
    group = {"members": [{"value": "7"}, {"value": "8"}]}
    result = patch_group(group, {"op": "remove", "path": "members", "value": [{"value": 7}]})
    assert result["members"] == [{"value": "8"}]


def test_remove_every_member_by_value_list_deletes_members() -> None:
    group = {"displayName": "G", "members": [{"value": "id1"}]}
    assert patch_group(group, {"op": "remove", "path": "members", "value": [{"value": "id1"}]}) == {
        "displayName": "G"
    }


def test_remove_members_without_value_removes_all_members() -> None:
    group = {"displayName": "G", "members": [{"value": "id1"}, {"value": "id2"}]}
    assert patch_group(group, {"op": "remove", "path": "members"}) == {"displayName": "G"}


def test_add_members_skips_members_already_present() -> None:
    group = {"members": [{"value": "id1"}]}
    result = patch_group(
        group, {"op": "add", "path": "members", "value": [{"value": "id1"}, {"value": "id2"}]}
    )
    assert result["members"] == [{"value": "id1"}, {"value": "id2"}]


# --------------------------------------------------------------------------------------- null and []


@pytest.mark.parametrize("op", ["add", "replace"])
@pytest.mark.parametrize("empty", [None, []])
def test_null_or_empty_list_unassigns_the_attribute(op: str, empty: Any) -> None:
    result = patch(
        BASE, {"op": op, "path": "displayName", "value": empty}, {"op": op, "path": "emails", "value": empty}
    )
    assert "displayName" not in result and "emails" not in result


def test_null_unassigns_a_sub_attribute() -> None:
    result = patch(BASE, {"op": "replace", "path": "name.givenName", "value": None})
    assert result["name"] == {"familyName": "Smith"}


def test_null_in_a_value_object_unassigns_that_attribute() -> None:
    result = patch(BASE, {"op": "replace", "value": {"displayName": None, "name": {"familyName": None}}})
    assert "displayName" not in result
    assert result["name"] == {"givenName": "Joanna"}


def test_null_filtered_sub_attribute_unassigns_it_on_matching_elements() -> None:
    result = patch(BASE, {"op": "replace", "path": 'emails[type eq "home"].primary', "value": None})
    assert result["emails"] == [{"value": "jo@home.example", "type": "home"}]


# ---------------------------------------------------------------------------------------------- paths


def test_attribute_names_are_case_insensitive_and_written_back_canonically() -> None:
    result = patch(
        BASE,
        {"op": "replace", "path": "NAME.GIVENNAME", "value": "Jo"},
        {"op": "add", "path": "DisplayName", "value": "J"},
        {"op": "add", "path": f"{ENT.upper()}:DEPARTMENT", "value": "Ops"},
        {"op": "add", "path": 'EMAILS[TYPE eq "home"].Display', "value": "Home"},
    )
    assert result["name"]["givenName"] == "Jo" and "GIVENNAME" not in result["name"]
    assert result["displayName"] == "J" and "DisplayName" not in result
    assert result[ENT]["department"] == "Ops"
    assert result["emails"][0]["display"] == "Home"


def test_stored_keys_in_another_case_are_replaced_not_duplicated() -> None:
    result = patch(
        {"userName": "a@x", "DISPLAYNAME": "old"}, {"op": "replace", "path": "displayName", "value": "new"}
    )
    assert result == {"userName": "a@x", "displayName": "new"}


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("favouriteColour", "favouriteColour"),
        ("name.nickName", "nickName"),
        (f"{ENT}:shoeSize", "shoeSize"),
        ('colours[value eq "red"].value', "colours"),
        ('emails[type eq "work"].colour', "colour"),
        ("urn:example:unknown:1.0:User:x", "urn:example:unknown:1.0:User:x"),
    ],
)
def test_unknown_attribute_in_path_is_invalid_path_naming_it(path: str, named: str) -> None:
    err = error_of(BASE, {"op": "replace", "path": path, "value": "x"})
    assert (err.status, err.scim_type) == (400, "invalidPath")
    assert named in err.detail


@pytest.mark.parametrize(
    "path",
    [
        'emails[type eq "work"',
        'emails[type eq "work"]value',
        'name[givenName eq "x"]',
        "emails[]",
        "name.a.b",
    ],
)
def test_malformed_path_is_invalid_path(path: str) -> None:
    err = error_of(BASE, {"op": "replace", "path": path, "value": "x"})
    assert (err.status, err.scim_type) == (400, "invalidPath")


def test_bad_filter_in_path_is_invalid_filter() -> None:
    err = error_of(BASE, {"op": "replace", "path": "emails[type eq].value", "value": "x"})
    assert (err.status, err.scim_type) == (400, "invalidFilter")


def test_filter_value_may_contain_brackets_and_dots() -> None:
    user = {**BASE, "emails": [{"value": "a]b.c@x", "type": "work"}]}
    result = patch(user, {"op": "replace", "path": 'emails[value eq "a]b.c@x"].type', "value": "home"})
    assert result["emails"] == [{"value": "a]b.c@x", "type": "home"}]


def test_error_detail_names_the_failing_operation() -> None:
    err = error_of(
        BASE, {"op": "add", "path": "title", "value": "x"}, {"op": "add", "path": "nope", "value": 1}
    )
    assert err.detail.startswith("Operations[1] (add nope):")


# ----------------------------------------------------------------------------------------- mutability


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("id", "id"),
        ("meta", "meta"),
        ("meta.version", "meta"),
        ("groups", "groups"),
        (PRODUCT_SCHEMA, PRODUCT_SCHEMA),
        (f"{PRODUCT_SCHEMA}:provisioningState", "provisioningState"),
        (f"{ENT}:manager.displayName", "manager.displayName"),
    ],
)
@pytest.mark.parametrize("op", ["add", "replace", "remove"])
def test_writing_a_read_only_attribute_through_a_path_is_a_mutability_error(
    op: str, path: str, named: str
) -> None:
    err = error_of(BASE, {"op": op, "path": path, "value": "x"})
    assert (err.status, err.scim_type) == (400, "mutability")
    assert named in err.detail


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "password", "value": "hunter2"},
        {"op": "add", "path": "PassWord", "value": "hunter2"},
        {"op": "remove", "path": "password"},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:password", "value": "x"},
        {"op": "replace", "value": {"active": True, "PASSWORD": "hunter2"}},
        {"op": "add", "value": {"urn:ietf:params:scim:schemas:core:2.0:User": {"password": "x"}}},
    ],
)
def test_password_anywhere_is_refused_with_an_explanation(operation: dict[str, Any]) -> None:
    err = error_of(BASE, operation)
    assert (err.status, err.scim_type) == (400, "mutability")
    assert "password changes are not supported" in err.detail
    assert "identity provider" in err.detail


def test_immutable_attribute_can_be_set_once_but_not_changed() -> None:
    set_once = patch_group({"displayName": "G"}, {"op": "add", "path": "badge", "value": "b1"})
    assert set_once["badge"] == "b1"
    assert patch_group(set_once, {"op": "replace", "path": "badge", "value": "b1"}) == set_once
    with pytest.raises(ScimError) as info:
        patch_group(set_once, {"op": "replace", "value": {"badge": "b2"}})
    assert (info.value.status, info.value.scim_type) == (400, "mutability")
    assert "badge" in info.value.detail


# ------------------------------------------------------------------------------------------- purity


def test_the_input_resource_is_not_mutated() -> None:
    original = copy.deepcopy(BASE)
    result = apply_patch(BASE, parse_patch_request(ENTRA_BODY), USER_RESOURCE)
    patch(
        BASE,
        {"op": "remove", "path": 'emails[type eq "home"].primary'},
        {"op": "replace", "path": "name.givenName", "value": "Z"},
        {"op": "add", "path": "roles", "value": {"value": "dev", "primary": True}},
        {"op": "remove", "path": f"{ENT}:manager"},
    )
    assert BASE == original
    assert result is not BASE and result["name"] is not BASE["name"]


def test_the_operation_value_is_not_aliased_into_the_result() -> None:
    value = [{"value": "admin"}]
    ops = parse_patch_request(body({"op": "add", "path": "roles", "value": value}))
    result = apply_patch(BASE, ops, USER_RESOURCE)
    result["roles"][-1]["value"] = "changed"
    assert value == [{"value": "admin"}]


# --------------------------------------------------------------------------------------- property test

SIMPLE_PATHS = ["displayName", "title", "nickName", "name.givenName"]


def _flip_case(path: str, mask: int) -> str:
    return "".join(c.upper() if (mask >> (i % 16)) & 1 else c.lower() for i, c in enumerate(path))


operation_strategy = st.tuples(
    st.sampled_from(["add", "replace", "remove"]),
    st.sampled_from(SIMPLE_PATHS),
    st.text(max_size=8),
    st.booleans(),  # send without a path, as a value object
    st.integers(min_value=0, max_value=2**16 - 1),  # letter case of the path
)


def _expected(model: dict[str, str]) -> dict[str, Any]:
    resource: dict[str, Any] = {"userName": "a@example.com"}
    for path, value in model.items():
        if path == "name.givenName":
            resource["name"] = {"givenName": value}
        else:
            resource[path] = value
    return resource


@settings(max_examples=200, deadline=None)
@given(
    initial=st.dictionaries(st.sampled_from(SIMPLE_PATHS), st.text(max_size=8)),
    steps=st.lists(operation_strategy, max_size=20),
)
def test_simple_attribute_operations_match_a_dictionary_model(
    initial: dict[str, str], steps: list[tuple[str, str, str, bool, int]]
) -> None:
    model = dict(initial)
    operations = []
    for op, path, value, no_path, mask in steps:
        written = _flip_case(path, mask)
        if op == "remove":
            operations.append(PatchOperation(op, written, None))
            model.pop(path, None)
        else:
            operations.append(
                PatchOperation(op, None, {written: value}) if no_path else PatchOperation(op, written, value)
            )
            model[path] = value
    start = _expected(initial)
    assert apply_patch(start, operations, USER_RESOURCE) == _expected(model)
    assert start == _expected(initial)
