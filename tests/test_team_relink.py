"""A SCIM group whose team was deleted links again: by a push once a team of its exact name exists, or by
hand (console and admin API); the worker then applies the group's members, audited and told as an event."""

from __future__ import annotations

import json
import uuid
from typing import Any

from scimsvc.services import teams as team_service
from tests.conftest import ADMIN_HEADERS, make_tenant, run_worker
from tests.portal import portal_session
from tests.test_console import csrf_of, signed_in
from tests.test_group_sync import put_members, team_members, unapplied
from tests.test_groups import make_group, make_team, make_user, send_patch

TEAMS = "/admin/v1/tenants/{tid}/teams"


async def delete_team(client: Any, tenant: Any, team_id: str) -> None:
    resp = await client.delete(f"{TEAMS.format(tid=tenant.id)}/{team_id}", headers=ADMIN_HEADERS)
    assert resp.status == 204, await resp.text()


async def unlinked_group(
    client: Any, tenant: Any, db: Any, settings: Any, members: list[str]
) -> dict[str, Any]:
    """A group with `members`, applied, whose team was then deleted (the group stays, linked to nothing)."""
    group = await make_group(client, tenant, members)
    team_id = str(await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group["id"]))
    await run_worker(settings)
    await delete_team(client, tenant, team_id)
    assert await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group["id"]) is None
    return group


async def linked_team_id(db: Any, group_id: str) -> str | None:
    value = await db.fetchval("SELECT team_id FROM groups WHERE id = $1::uuid", group_id)
    return str(value) if value else None


async def link_events(db: Any, tenant_id: str, group_id: str) -> list[dict[str, Any]]:
    rows = await db.fetch(
        "SELECT data FROM events WHERE tenant_id = $1::uuid AND type = 'group.linked' "
        "AND data->'group'->>'id' = $2 ORDER BY id",
        tenant_id,
        group_id,
    )

    return [json.loads(r["data"]) if isinstance(r["data"], str) else r["data"] for r in rows]


def error_of(body: str) -> str:
    """The text of a console page's error box."""
    return body.split('<div class="error" role="alert">', 1)[1].split("</div>", 1)[0]


async def link_audits(db: Any, tenant_id: str) -> list[Any]:
    return await db.fetch(
        "SELECT actor, detail::text AS detail FROM audit_log "
        "WHERE tenant_id = $1::uuid AND action = 'team_linked' ORDER BY id",
        tenant_id,
    )


async def test_a_push_after_the_team_is_created_again_links_the_group_and_applies_its_members(
    client, tenant, db, settings
):
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    group = await unlinked_group(client, tenant, db, settings, [a, b])
    # While no team has its name, a push answers as before and changes no team.
    await put_members(client, tenant, group, [a, b])
    assert await linked_team_id(db, group["id"]) is None
    team = await make_team(client, tenant, group["displayName"])
    await put_members(client, tenant, group, [a, c])
    assert await linked_team_id(db, group["id"]) == team["id"]
    await run_worker(settings)
    assert await team_members(db, team["id"]) == {a, c}
    assert await unapplied(db, tenant.id) == 0
    events = await link_events(db, tenant.id, group["id"])
    assert events[-1]["team"] == {"id": team["id"], "name": group["displayName"]}
    audits = await link_audits(db, tenant.id)
    assert [r["actor"] for r in audits] == ["scim"]
    assert team["id"] in audits[0]["detail"] and group["id"] in audits[0]["detail"]
    assert json.loads(audits[0]["detail"])["via"] == "push" and "by" not in json.loads(audits[0]["detail"])
    resp = await client.get(f"{TEAMS.format(tid=tenant.id)}/{team['id']}", headers=ADMIN_HEADERS)
    assert (await resp.json())["group"] == {"id": group["id"], "displayName": group["displayName"]}


async def test_an_incremental_patch_relinks_and_the_team_gets_every_member_of_the_group(
    client, tenant, db, settings
):
    a, b, c = [await make_user(client, tenant) for _ in range(3)]
    group = await unlinked_group(client, tenant, db, settings, [a, b])
    team = await make_team(client, tenant, group["displayName"])
    manual = await make_user(client, tenant)
    resp = await client.put(
        f"{TEAMS.format(tid=tenant.id)}/{team['id']}/members/{manual}", headers=ADMIN_HEADERS
    )
    assert resp.status == 204
    resp = await send_patch(
        client, tenant, group["id"], {"op": "add", "path": "members", "value": [{"value": c}]}
    )
    assert resp.status == 204
    await run_worker(settings)
    # As on a first sync: the group's members join, nobody is removed.
    assert await team_members(db, team["id"]) == {a, b, c, manual}
    assert len(await link_events(db, tenant.id, group["id"])) == 2  # the first link, and this one


async def test_a_patch_that_changes_nothing_still_relinks_and_the_worker_adds_the_members(
    client, tenant, db, settings
):
    # Okta pushes a group's name again as a PATCH replace of the same displayName: nothing to write, but the
    # team made again with that name gets the group, and the worker adds its members.
    a, b = [await make_user(client, tenant) for _ in range(2)]
    group = await unlinked_group(client, tenant, db, settings, [a, b])
    team = await make_team(client, tenant, group["displayName"])
    same_name = {"op": "replace", "value": {"id": group["id"], "displayName": group["displayName"]}}
    resp = await send_patch(client, tenant, group["id"], same_name)
    assert resp.status in (200, 204)
    assert await linked_team_id(db, group["id"]) == team["id"]
    await run_worker(settings)
    assert await team_members(db, team["id"]) == {a, b}
    assert [r["actor"] for r in await link_audits(db, tenant.id)] == ["scim"]
    # Sent again, it changes nothing more.
    resp = await send_patch(client, tenant, group["id"], same_name)
    assert resp.status in (200, 204)
    assert len(await link_audits(db, tenant.id)) == 1


async def test_a_push_does_not_take_a_team_linked_to_another_group(client, tenant, db, settings):
    group = await unlinked_group(client, tenant, db, settings, [])
    other = await make_group(client, tenant, [], name=group["displayName"] + "-x")
    other_team = await linked_team_id(db, other["id"])
    resp = await client.patch(
        f"{TEAMS.format(tid=tenant.id)}/{other_team}",
        json={"name": group["displayName"]},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 200
    await put_members(client, tenant, group, [])
    assert await linked_team_id(db, group["id"]) is None
    assert await linked_team_id(db, other["id"]) == other_team


async def test_the_admin_api_links_a_group_by_hand_and_the_worker_applies_its_members(
    client, tenant, db, settings
):
    a, b = await make_user(client, tenant), await make_user(client, tenant)
    group = await unlinked_group(client, tenant, db, settings, [a, b])
    team = await make_team(client, tenant, "Any name " + uuid.uuid4().hex[:4])
    url = f"{TEAMS.format(tid=tenant.id)}/{team['id']}/group"
    resp = await client.put(url, json={"group_id": group["id"]}, headers=ADMIN_HEADERS)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["group"]["id"] == group["id"]
    await run_worker(settings)
    assert await team_members(db, team["id"]) == {a, b}
    audits = await link_audits(db, tenant.id)
    assert [r["actor"] for r in audits] == ["admin"] and '"via": "hand"' in audits[0]["detail"]
    assert '"by"' not in audits[0]["detail"]  # the operator has no email
    assert (await link_events(db, tenant.id, group["id"]))[-1]["team"]["id"] == team["id"]
    # Both are linked now: linking either again is a conflict, nothing changes.
    again = await client.put(url, json={"group_id": group["id"]}, headers=ADMIN_HEADERS)
    assert again.status == 409
    third = await make_team(client, tenant)
    resp = await client.put(
        f"{TEAMS.format(tid=tenant.id)}/{third['id']}/group",
        json={"group_id": group["id"]},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 409 and "already linked" in (await resp.json())["detail"]
    assert len(await link_audits(db, tenant.id)) == 1


async def test_linking_by_hand_refuses_another_organizations_group_or_team_and_bad_input(
    client, tenant, db, settings
):
    other = await make_tenant(client)
    foreign_group = await unlinked_group(client, other, db, settings, [])
    group = await unlinked_group(client, tenant, db, settings, [])
    team = await make_team(client, tenant)
    foreign_team = await make_team(client, other)
    url = f"{TEAMS.format(tid=tenant.id)}/{team['id']}/group"
    resp = await client.put(url, json={"group_id": foreign_group["id"]}, headers=ADMIN_HEADERS)
    assert resp.status == 404
    resp = await client.put(
        f"{TEAMS.format(tid=tenant.id)}/{foreign_team['id']}/group",
        json={"group_id": group["id"]},
        headers=ADMIN_HEADERS,
    )
    assert resp.status == 404
    for body in ({"group_id": "not-a-uuid"}, {}, {"group_id": group["id"], "extra": 1}):
        resp = await client.put(url, json=body, headers=ADMIN_HEADERS)
        assert resp.status == 400, body
    assert await linked_team_id(db, group["id"]) is None
    assert await linked_team_id(db, foreign_group["id"]) is None
    assert await link_audits(db, tenant.id) == [] and await link_audits(db, other.id) == []


async def test_the_console_team_page_links_a_group_and_the_lists_show_it(client, tenant, db, settings):
    a = await make_user(client, tenant)
    group = await unlinked_group(client, tenant, db, settings, [a])
    team = await make_team(client, tenant, "Console team " + uuid.uuid4().hex[:4])
    csrf = await signed_in(client)
    base = f"/console/tenants/{tenant.id}/teams"
    page = await client.get(f"{base}/{team['id']}")
    body = await page.text()
    assert page.status == 200 and "Link a SCIM group" in body and group["id"] in body
    resp = await client.post(
        f"{base}/{team['id']}/group",
        data={"csrf_token": csrf, "group_id": group["id"]},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"].endswith("?done=team-linked")
    page = await client.get(resp.headers["Location"])
    body = await page.text()
    assert "applying…" in body and 'http-equiv="refresh"' in body
    await run_worker(settings)
    assert await team_members(db, team["id"]) == {a}
    page = await client.get(f"{base}/{team['id']}")
    body = await page.text()
    assert "applying…" not in body and group["displayName"] in body and "members: 1" in body
    listing = await (await client.get(base)).text()
    assert group["displayName"] in listing and "no SCIM group" not in listing.split(team["name"])[1][:400]
    # Linked already: a second link is a 409 on the page, nothing changes.
    other = await unlinked_group(client, tenant, db, settings, [])
    resp = await client.post(f"{base}/{team['id']}/group", data={"csrf_token": csrf, "group_id": other["id"]})
    assert resp.status == 409 and "a team follows one group" in await resp.text()
    # Another organization's group: 404.
    foreign = await make_tenant(client)
    foreign_group = await unlinked_group(client, foreign, db, settings, [])
    fresh = await make_team(client, tenant)
    resp = await client.post(
        f"{base}/{fresh['id']}/group", data={"csrf_token": csrf, "group_id": foreign_group["id"]}
    )
    assert resp.status == 404
    assert await linked_team_id(db, foreign_group["id"]) is None
    assert "That SCIM group is not in this organization any more: choose another." in await resp.text()


async def test_the_linkable_groups_member_counts_stop_at_a_cap(client, tenant, db, settings, monkeypatch):
    monkeypatch.setattr(team_service, "LINKABLE_MEMBERS_COUNTED", 1)
    a, b = await make_user(client, tenant), await make_user(client, tenant)
    big = await unlinked_group(client, tenant, db, settings, [a, b])
    small = await unlinked_group(client, tenant, db, settings, [a])
    team = await make_team(client, tenant, "Cap " + uuid.uuid4().hex[:4])
    await signed_in(client)
    body = await (await client.get(f"/console/tenants/{tenant.id}/teams/{team['id']}")).text()
    assert f"{big['displayName']} (members: 1+)" in body and f"{small['displayName']} (members: 1)" in body


async def test_the_team_pages_say_what_is_wrong_in_plain_words(client, tenant, db):
    team = await make_team(client, tenant, "Plain " + uuid.uuid4().hex[:4])
    csrf = await signed_in(client)
    base = f"/console/tenants/{tenant.id}/teams"
    for group_id in ("nope", ""):
        resp = await client.post(
            f"{base}/{team['id']}/group", data={"csrf_token": csrf, "group_id": group_id}
        )
        body = await resp.text()
        assert resp.status == 400 and "Choose the SCIM group to link to this team." in body
        assert "Not a valid UUID" not in body
    resp = await client.post(f"{base}/{team['id']}/rename", data={"csrf_token": csrf, "name": "x" * 201})
    body = await resp.text()
    assert (
        resp.status == 400 and "A team name is 1 to 200 characters of text." in body and "name:" not in body
    )
    missing = uuid.uuid4()
    for path in (f"{base}/{missing}", f"{base}/{missing}/delete"):
        resp = await client.get(path)
        body = await resp.text()
        assert resp.status == 404 and "There is no such team in this organization" in error_of(body)
        assert str(missing) not in error_of(body)
    resp = await client.post(f"{base}/{missing}/group", data={"csrf_token": csrf, "group_id": str(missing)})
    assert resp.status == 404 and "There is no such team in this organization" in await resp.text()
    for section in ("scim", "teams", "users", f"users/{missing}"):
        resp = await client.get(f"/console/tenants/{missing}/{section}")
        body = await resp.text()
        assert resp.status == 404 and "There is no such organization" in error_of(body), section
        assert "tenant" not in error_of(body)
    resp = await client.get(f"/console/tenants/{tenant.id}/users/{missing}")
    assert resp.status == 404 and "There is no such user in this organization" in await resp.text()
    assert await db.fetchval("SELECT count(*) FROM groups WHERE team_id = $1::uuid", team["id"]) == 0


async def test_an_organization_admins_link_by_hand_is_audited_with_their_email(client, tenant, db, settings):
    group = await unlinked_group(client, tenant, db, settings, [])
    team = await make_team(client, tenant, "Hand " + uuid.uuid4().hex[:4])
    portal = await portal_session(client, tenant.id, email="ada.admin@example.com")
    resp = await client.post(
        f"/console/tenants/{tenant.id}/teams/{team['id']}/group",
        data={"csrf_token": portal.csrf, "group_id": group["id"]},
        allow_redirects=False,
    )
    assert resp.status == 303, await resp.text()
    audits = await link_audits(db, tenant.id)
    assert [r["actor"] for r in audits] == ["org_admin"]
    detail = json.loads(audits[0]["detail"])
    assert detail["via"] == "hand" and detail["by"] == "ada.admin@example.com"
    assert (detail["team_id"], detail["group_id"]) == (team["id"], group["id"])


async def test_deleting_a_team_in_the_console_asks_first_naming_the_linked_group(
    client, tenant, db, settings
):
    a = await make_user(client, tenant)
    group = await make_group(client, tenant, [a])
    team_id = await linked_team_id(db, group["id"])
    await run_worker(settings)
    csrf = await signed_in(client)
    base = f"/console/tenants/{tenant.id}/teams"
    listing = await (await client.get(base)).text()
    assert f"{base}/{team_id}/delete" in listing and 'action="' + f"{base}/{team_id}/delete" not in listing
    page = await client.get(f"{base}/{team_id}/delete")
    body = await page.text()
    assert page.status == 200 and group["displayName"] in body and "members: 1" in body
    assert csrf_of(body) == csrf and f'action="{base}/{team_id}/delete"' in body
    assert await db.fetchval("SELECT count(*) FROM teams WHERE id = $1::uuid", team_id) == 1
    resp = await client.post(f"{base}/{team_id}/delete", data={"csrf_token": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("?done=team-deleted")
    assert await db.fetchval("SELECT count(*) FROM teams WHERE id = $1::uuid", team_id) == 0
    foreign = await make_tenant(client)
    foreign_team = await make_team(client, foreign)
    assert (await client.get(f"/console/tenants/{tenant.id}/teams/{foreign_team['id']}/delete")).status == 404
    resp = await client.post(
        f"/console/tenants/{tenant.id}/teams/{foreign_team['id']}/delete", data={"csrf_token": csrf}
    )
    assert resp.status == 404
    assert await db.fetchval("SELECT count(*) FROM teams WHERE id = $1::uuid", foreign_team["id"]) == 1
