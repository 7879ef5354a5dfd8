"""The public SCIM compliance checker `scim2-tester` against a live server: every check must pass.

scim2-tester discovers the server from /ServiceProviderConfig, /ResourceTypes and /Schemas, then runs its
create/read/query/replace/delete and PATCH add/remove/replace checks on every attribute of Users and Groups,
and its discovery and error checks. Its random values are kept as they are, except where a product rule
documented in the repository needs a value of a given shape; those rules are the product's, not conformance
gaps:

* `userName` must be an email address (schemas/user.py, UserSchema): the checker gets fresh addresses;
* a photo URL must be http(s) ending in an image extension (schemas/user.py, UserSchema): the checker gets
  such URLs;
* a Group links to an existing team by its exact name on creation (README.md, SCIM Groups and teams): the
  operator creates teams first (as the Teams API is used before an IdP pushes groups), and the checker
  names new groups after them.

No check is skipped. One kind of result is expected to fail, and the test asserts that it fails the
right way: scim2-tester PATCHes (add, replace, remove) every extension as a whole as if it were writable,
because scim2-models gives each extension field readWrite mutability and /Schemas has no way to say
otherwise. Our product extension (`urn:scimsvc:schemas:extension:product:2.0:User`) holds only readOnly
attributes that the worker maintains, so those three PATCHes get 400 `mutability`, which is what RFC 7644
§3.5.2 requires for a readOnly target; accepting them would mean reporting product state the IdP wrote.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx2
import pytest
import scim2_tester.filling as filling
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import CheckResult, Status, check_server

from scimsvc.web.app import create_app
from tests.conftest import create_team, make_tenant

PASSING = {Status.SUCCESS, Status.COMPLIANT, Status.ACCEPTABLE}
PRODUCT = "urn:scimsvc:schemas:extension:product:2.0:User"
PATCH_CHECKS = ("check_add_attribute", "check_replace_attribute", "check_remove_attribute")


def refused_read_only_extension(result: CheckResult) -> bool:
    """A PATCH of the whole read-only product extension, refused with 400 mutability (see above)."""
    reason = result.reason or ""
    return (
        result.resource_type == "User"
        and result.title in PATCH_CHECKS
        and result.status == Status.ERROR
        and reason.startswith(f"Failed to {result.title.split('_')[1]} attribute '{PRODUCT}'")
        and f"{PRODUCT} is readOnly" in reason
    )


TEAMS = 200  # more than the groups the checker creates in one run


def shaped_examples(teams: list[str]) -> Any:
    """A stand-in for scim2-tester's example picker that gives product-shaped values where needed."""
    original = filling.get_random_example_value

    def example(path: Any) -> Any:
        binding = path.resolve()
        model = getattr(binding.target_model, "__name__", "") if binding else ""
        name = binding.target_field_name if binding else ""
        if name == "user_name":
            return f"checker.{uuid.uuid4().hex}@example.com"
        if name == "value" and model.lower().startswith("photo"):
            return f"https://images.example.com/{uuid.uuid4().hex}.png"
        if name == "display_name" and model.startswith("Group"):
            return teams.pop()
        return original(path)

    return example


def describe(result: CheckResult) -> str:
    return f"{result.resource_type or '-'} {result.title}: {result.status.name}: {result.reason}"


@pytest.fixture
async def live(aiohttp_server: Any, aiohttp_client: Any, settings: Any, monkeypatch: Any) -> Any:
    server = await aiohttp_server(create_app(settings))
    client = await aiohttp_client(server)
    tenant = await make_tenant(client)
    teams = [(await create_team(client, tenant, f"team-{uuid.uuid4().hex}"))["name"] for _ in range(TEAMS)]
    monkeypatch.setattr(filling, "get_random_example_value", shaped_examples(teams))
    return str(server.make_url("/scim/v2")), tenant


async def test_scim2_tester_finds_no_failure(live: Any) -> None:
    base, tenant = live

    def run() -> list[CheckResult]:
        headers = {"Authorization": f"Bearer {tenant.token}"}
        with httpx2.Client(base_url=base, headers=headers, timeout=120) as http:
            return check_server(SyncSCIMClient(http))

    results = await asyncio.to_thread(run)
    refused = [r for r in results if refused_read_only_extension(r)]
    assert sorted(r.title for r in refused) == sorted(PATCH_CHECKS)
    failures = [describe(r) for r in results if r.status not in PASSING and r not in refused]
    assert not failures, "\n".join(failures)
    # The run really covered both resource types, every CRUD step and PATCH on every attribute.
    titles = {(r.resource_type, r.title) for r in results}
    for rtype in ("User", "Group"):
        for check in (
            "object_creation",
            "object_query",
            "object_query_without_id",
            "object_query_with_attributes",
            "object_list_with_attributes",
            "search_with_attributes",
            "object_replacement",
            "object_deletion",
            "check_add_attribute",
            "check_remove_attribute",
            "check_replace_attribute",
        ):
            assert (rtype, check) in titles, (rtype, check)
    assert len(results) > 100
