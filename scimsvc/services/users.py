"""The steps of each SCIM User request: validate, write with its outbox row, read back.

No SCIM rule of its own lives here (those are in `scimsvc.scim`); this module chains them with the
store calls, in one transaction per write.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from schemas.user import ENTERPRISE_SCHEMA, USER_RESOURCE
from scimsvc.contract import AuditAction, ChangeKind, ResourceType
from scimsvc.product.notices import email_change_notices
from scimsvc.scim.errors import Reason, invalid_value, not_found, uniqueness
from scimsvc.scim.filters.sql import Queryable, where_sql
from scimsvc.scim.ids import id_or_404
from scimsvc.scim.patch import apply_patch, parse_patch_request, patched_active, patched_texts
from scimsvc.scim.resources import check_if_match
from scimsvc.scim.sorting import Sort, order_for
from scimsvc.scim.users import change_kind, check_allowed_domain, manager_id, stored_as_given, validate_user
from scimsvc.services import page_cursors
from scimsvc.services.changes import (
    OneStatement,
    Scope,
    Transaction,
    deleted_user,
    new_user,
    put_user,
    read_user_update,
    saved_by,
    set_user_active,
    set_user_texts,
    write,
)
from scimsvc.store import audit, user_reads
from scimsvc.store import groups as group_store
from scimsvc.store import notices as notice_store
from scimsvc.store import users as store
from scimsvc.store.user_reads import UserRead

TAKEN = (
    "userName {name!r} is already used by another user of this tenant "
    "(userNames are unique, case-insensitively)"
)


def parse_user_id(raw: str) -> UUID:
    """A user id from a URL; anything that is not one of ours is simply not found."""
    return id_or_404(raw, "User")


async def _resolve_manager(
    conn: asyncpg.Connection, tenant_id: UUID, resource: dict[str, Any], *, user_id: UUID | None
) -> None:
    """The manager must be another user of the tenant; fill in its displayName (read-only for the IdP)."""
    raw = manager_id(resource)
    if raw is None:
        return
    try:
        mid = UUID(raw)
    except ValueError:
        mid = None
    if mid is not None and mid == user_id:
        raise invalid_value("manager.value is the user's own id: a user cannot be their own manager")
    names = await store.display_names(conn, tenant_id, [mid]) if mid else {}
    if mid not in names:
        raise invalid_value(
            f"manager.value {raw!r} is not the id of a user of this organization: provision the manager "
            "first",
            reason=Reason.UNKNOWN_MANAGER,
        )
    resource[ENTERPRISE_SCHEMA]["manager"]["displayName"] = names[mid]


Locker = Callable[[asyncpg.Connection], Awaitable[asyncpg.Record | None]]
Builder = Callable[[asyncpg.Record | None], dict[str, Any] | None]


async def _write_user(
    scope: Scope, lock: Locker, build: Builder, *, one_statement: OneStatement | None = None
) -> asyncpg.Record:
    """Save a user and its outbox row: by `one_statement` if given and it wrote, else by the locked path.

    The locked path locks the user, builds its new resource from the locked row and saves it: concurrent
    PATCHes of one user never lose each other's changes. `build` returns None when nothing changes; then
    nothing is written. A transaction PostgreSQL aborts to break a deadlock (a rename waiting on a name
    another transaction is inserting, while that one waits on this user) runs again.
    """

    async def steps(tx: Transaction) -> asyncpg.Record:
        existing = await lock(tx.conn)
        resource = build(existing)
        if resource is None:
            assert existing is not None
            return existing
        # New provisioning (or a new email) must pass the allowlist; other updates, such as
        # deactivating a user whose domain was removed from the list later, must not be blocked.
        if existing is None or not existing["scim_linked"] or existing["user_name"] != resource["userName"]:
            check_allowed_domain(resource["userName"], scope.allowed_domains)
        await _resolve_manager(
            tx.conn, scope.tenant_id, resource, user_id=existing["id"] if existing is not None else None
        )
        try:
            if existing is None:
                row = await store.insert_user(tx.conn, scope.tenant_id, resource)
                change = ChangeKind.CREATE
            else:
                row = await store.update_user(tx.conn, scope.tenant_id, existing["id"], resource)
                change = change_kind(
                    was_active=existing["active"], was_linked=existing["scim_linked"], active=row["active"]
                )
        except asyncpg.UniqueViolationError:
            raise uniqueness(TAKEN.format(name=resource["userName"])) from None
        payload: dict[str, Any] = {"active": row["active"]}
        if existing is not None and existing["scim_linked"] and existing["user_name"] != row["user_name"]:
            payload["previous_user_name"] = existing["user_name"]
            notices = email_change_notices(
                old=existing["user_name"],
                new=row["user_name"],
                name=resource.get("displayName") or row["user_name"],
            )
            await notice_store.add_notices(
                tx.conn, scope.tenant_id, row["id"], notices, request_id=scope.request_id
            )
            await audit.audit(
                tx.conn,
                scope.tenant_id,
                [row["id"]],
                AuditAction.EMAIL_CHANGE,
                actor="scim",
                detail={"from": existing["user_name"], "to": row["user_name"]},
                request_id=scope.request_id,
            )
        await tx.record(ResourceType.USER, row["id"], change, payload)
        return row

    return await write(scope, steps, one_statement=one_statement)


def _lock_linked(
    scope: Scope, raw_id: str, if_match: str | None
) -> Callable[[asyncpg.Connection], Awaitable[asyncpg.Record]]:
    """Lock a linked user of the tenant (404 if none) and check If-Match against it."""
    user_id = parse_user_id(raw_id)

    async def lock(conn: asyncpg.Connection) -> asyncpg.Record:
        row = await store.get_user(conn, scope.tenant_id, user_id, for_update=True)
        if row is None:
            raise not_found(f"User {raw_id!r} not found")
        check_if_match(if_match, row["version"])
        return row

    return lock


async def create_user(scope: Scope, body: Any) -> asyncpg.Record:
    """POST /Users. A userName that was SCIM-DELETEd re-links that same product user."""
    resource = validate_user(body, refuse_password=False)
    resource.setdefault("active", True)
    fast = None
    if manager_id(resource) is None:
        # The common case, a new userName, in one statement; a taken one falls through to the locked path.
        check_allowed_domain(resource["userName"], scope.allowed_domains)
        fast = new_user(scope, resource)

    async def lock(conn: asyncpg.Connection) -> asyncpg.Record | None:
        existing = await store.lock_by_user_name(conn, scope.tenant_id, resource["userName"])
        if existing is not None and existing["scim_linked"]:
            raise uniqueness(TAKEN.format(name=resource["userName"]))
        return existing

    return await _write_user(scope, lock, lambda _: resource, one_statement=fast)


async def get_user(scope: Scope, raw_id: str) -> asyncpg.Record:
    """GET /Users/{id}."""
    row = await store.get_user(scope.pool, scope.tenant_id, parse_user_id(raw_id))
    if row is None:
        raise not_found(f"User {raw_id!r} not found")
    return row


async def replace_user(scope: Scope, raw_id: str, body: Any, *, if_match: str | None) -> asyncpg.Record:
    """PUT /Users/{id}: the body replaces the user; `active` left out keeps its current value."""
    resource = validate_user(body, refuse_password=True)

    def build(current: asyncpg.Record | None) -> dict[str, Any]:
        assert current is not None
        return resource if "active" in resource else {**resource, "active": current["active"]}

    if if_match is None and manager_id(resource) is None:
        # As IdPs send it: saved without reading the user first, if it keeps its userName (else, or
        # when not found, the locked path: a rename, a 404).
        fast = put_user(scope, parse_user_id(raw_id), resource)
        return await _write_user(scope, _lock_linked(scope, raw_id, if_match), build, one_statement=fast)
    return await _update_user(scope, raw_id, if_match, build)


async def patch_user(scope: Scope, raw_id: str, body: Any, *, if_match: str | None) -> asyncpg.Record:
    """PATCH /Users/{id}: apply the operations to the stored user, re-validate, save if anything changed."""
    operations = parse_patch_request(body)

    def build(current: asyncpg.Record | None) -> dict[str, Any] | None:
        assert current is not None
        stored = dict(current["resource"])
        if "active" in stored or not current["active"]:
            stored["active"] = current["active"]
        # A removed `active` is unassigned (RFC 7644 §3.5.2.2): the user stays active, and it is not shown.
        resource = validate_user(apply_patch(stored, operations, USER_RESOURCE), refuse_password=True)
        return None if resource == stored else resource

    if if_match is None and (active := patched_active(operations)) is not None:
        # Okta's deactivation (and reactivation): saved without reading the user first, if it has the
        # other value; else (the same value, a manager to check, not found) the locked path.
        fast = set_user_active(scope, parse_user_id(raw_id), active)
        return await _write_user(scope, _lock_linked(scope, raw_id, if_match), build, one_statement=fast)
    texts = patched_texts(operations, USER_RESOURCE, kept=_READ_TO_SET) if if_match is None else None
    if texts is not None and stored_as_given(texts):
        # Entra's `Replace` of displayName, title...: saved without reading the user first, if it has no
        # manager and something changes; else (nothing changes, a manager, not found) the read path.
        saved = await saved_by(scope, set_user_texts(scope, parse_user_id(raw_id), texts))
        if saved is not None:
            return saved
    return await _update_user(scope, raw_id, if_match, build)


# The attributes a PATCH never sets unread: userName and externalId have columns and rules of their own, a
# manager is resolved to a user of the organization.
_READ_TO_SET = frozenset({"userName", "externalId", "manager"})


async def _update_user(scope: Scope, raw_id: str, if_match: str | None, build: Builder) -> asyncpg.Record:
    """PUT or PATCH: most change neither the userName nor the manager, and are saved with one statement
    that checks the version they were built on; the others, and one that lost a race to a concurrent
    write, take the locked path (which builds again from the locked row, so no change is lost)."""
    user_id = parse_user_id(raw_id)
    current = await user_reads.read_user(scope.user_reads or scope.pool, UserRead(scope.tenant_id, user_id))
    if current is None:
        raise not_found(f"User {raw_id!r} not found")
    check_if_match(if_match, current["version"])
    resource = build(current)
    if resource is None:
        return current
    fast = None
    if resource["userName"] == current["user_name"] and manager_id(resource) is None:
        change = change_kind(
            was_active=current["active"], was_linked=True, active=resource.get("active", True)
        )
        fast = read_user_update(scope, user_id, resource, version=current["version"], change=change)
    return await _write_user(scope, _lock_linked(scope, raw_id, if_match), build, one_statement=fast)


async def delete_user(scope: Scope, raw_id: str, *, if_match: str | None) -> None:
    """DELETE /Users/{id}: deactivate and unlink (never destructive); GET then answers 404."""
    lock = _lock_linked(scope, raw_id, if_match)

    async def steps(tx: Transaction) -> None:
        current = await lock(tx.conn)
        await store.unlink_user(tx.conn, scope.tenant_id, current["id"])
        await group_store.forget_user(tx.conn, scope.tenant_id, current["id"])  # its teams stay
        await tx.record(ResourceType.USER, current["id"], ChangeKind.DELETE, {"active": False})

    # Without If-Match (as IdPs send it), one statement; a user it finds no linked row for, or a DELETE
    # with If-Match, takes the locked path (its 404 and 412).
    fast = deleted_user(scope, parse_user_id(raw_id)) if if_match is None else None
    await write(scope, steps, one_statement=fast)


USERS = Queryable(
    USER_RESOURCE,
    store.FILTER_COLUMNS,
    store.RESOURCE_COLUMN,
    store.STABLE_ORDER,
    element_indexes=store.ELEMENT_INDEXES,
)


def user_filter_sql(filter_text: str | None, params: list[Any]) -> str:
    """The WHERE condition for a User filter (TRUE when there is none); values go to `params`."""
    return where_sql(filter_text, USERS, params)


async def list_users(
    scope: Scope,
    *,
    filter_text: str | None,
    start_index: int,
    count: int,
    sort: Sort | None = None,
    where: str | None = None,
    params: list[Any] | None = None,
) -> tuple[int, list[asyncpg.Record]]:
    """GET /Users: one page of the tenant's users matching the filter, in `sort` order, with its total
    (a walk through startIndex keeps its first page's, see `page_cursors`). A caller that compiled the
    filter already passes `where` and its `params` (`$1` = tenant)."""
    if where is None or params is None:
        params = [scope.tenant_id]
        where = user_filter_sql(filter_text, params)
    offset = start_index - 1
    if sort is not None:
        ordering = order_for(sort, USERS)
        return await store.list_users(
            scope.pool, where=where, params=params, offset=offset, limit=count, order_by=ordering
        )
    # The default order: an IdP walking startIndex reads each next page from where the last one ended.
    query = (where, *params)
    prefix, tenant_id = scope.settings.queue_name, scope.tenant_id
    after = None
    if offset:
        after = await page_cursors.find(
            scope.limiter_redis, page_cursors.cursor_key(prefix, tenant_id, query, offset)
        )
    total, rows = await store.list_users(
        scope.pool, where=where, params=params, offset=offset, limit=count, after=after
    )
    if count and len(rows) == count:
        next_key = page_cursors.cursor_key(prefix, tenant_id, query, offset + count)
        page_cursors.remember(scope.limiter_redis, next_key, (rows[-1]["created_at"], rows[-1]["id"], total))
    return total, rows
