"""The root search (POST /.search): Users then Groups, as one list (see `scim.search.page_split`).

A filter is compiled for each resource type; a type whose schema cannot take it (an attribute it does not
have, an operator that does not fit) contributes nothing, and only a filter that fits no type is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from schemas.group import GROUP_RESOURCE
from schemas.user import USER_RESOURCE
from scimsvc.scim.errors import ScimError
from scimsvc.scim.search import page_split
from scimsvc.scim.sorting import parse_sort
from scimsvc.services import groups as group_service
from scimsvc.services import users as user_service
from scimsvc.services.changes import Scope


@dataclass(frozen=True)
class RootPage:
    """One page of a root search: the total over both types and the rows of each on this page."""

    total: int
    users: list[asyncpg.Record]
    groups: list[asyncpg.Record]


def _compiled(
    compile_where: Any, filter_text: str | None, tenant_id: Any
) -> tuple[str, list[Any]] | ScimError:
    params: list[Any] = [tenant_id]
    try:
        return compile_where(filter_text, params), params
    except ScimError as exc:
        return exc


async def search_all(
    scope: Scope,
    *,
    filter_text: str | None,
    start_index: int,
    count: int,
    sort_by: str | None,
    sort_order: str | None,
) -> RootPage:
    """A page of the tenant's Users and Groups matching the filter, Users first, each sorted as asked.

    `sortBy` applies to the types that have the attribute; the others keep their default order.
    """
    user_where = _compiled(user_service.user_filter_sql, filter_text, scope.tenant_id)
    group_where = _compiled(group_service.group_filter_sql, filter_text, scope.tenant_id)
    if isinstance(user_where, ScimError) and isinstance(group_where, ScimError):
        raise user_where
    user_sort = _sort_or_none(sort_by, sort_order, USER_RESOURCE)
    group_sort = _sort_or_none(sort_by, sort_order, GROUP_RESOURCE)
    users_total, users = 0, list[asyncpg.Record]()
    if not isinstance(user_where, ScimError):
        users_total, users = await user_service.list_users(
            scope,
            filter_text=filter_text,
            start_index=start_index,
            count=count,
            sort=user_sort,
            where=user_where[0],
            params=user_where[1],
        )
    groups_total, groups = 0, list[asyncpg.Record]()
    if not isinstance(group_where, ScimError):
        _, (offset, limit) = page_split(start_index, count, users_total)
        groups_total, groups = await group_service.list_groups(
            scope,
            filter_text=filter_text,
            start_index=offset + 1,
            count=limit,
            sort=group_sort,
            where=group_where[0],
            params=group_where[1],
        )
    return RootPage(users_total + groups_total, users, groups)


def _sort_or_none(sort_by: str | None, sort_order: str | None, rtype: Any) -> Any:
    try:
        return parse_sort(sort_by, sort_order, rtype)
    except ScimError:
        # An attribute this type lacks: its resources keep the default order. A bad sortOrder
        # is refused for both types, so the caller still hears about it.
        parse_sort(None, sort_order, rtype)
        return None
