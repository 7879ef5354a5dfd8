"""RFC 7644 §3.4.3 searches with POST (`/Users/.search`, `/Groups/.search`, `/.search`); no I/O.

A SearchRequest body carries the same parameters as a GET query; `search_query` turns it into that
query, so a POST search runs exactly the code of the matching GET. `page_split` defines paging of a
root search, which spans two resource types: the matching Users come first, then the matching Groups
(each in the requested sort order), and startIndex/count walk that one list; totalResults is the sum.
"""

from __future__ import annotations

from typing import Any

from scimsvc.scim.errors import invalid_syntax, invalid_value, shown

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
_TEXT = ("filter", "sortBy", "sortOrder")
_NUMBERS = ("startIndex", "count")
_LISTS = ("attributes", "excludedAttributes")


def search_query(body: Any) -> dict[str, str]:
    """The GET query parameters a SearchRequest body stands for; 400 if it is not one.

    Names are matched case-insensitively; `attributes` may be a list (as in the RFC) or a
    comma-separated string; unknown members are ignored, like unknown attributes elsewhere.
    """
    if not isinstance(body, dict):
        raise invalid_syntax("a search request body must be a JSON object (a SearchRequest)")
    schemas = body.get("schemas")
    if schemas is not None and (
        not isinstance(schemas, list) or SEARCH_REQUEST.lower() not in {str(s).lower() for s in schemas}
    ):
        raise invalid_syntax(f'a search request\'s "schemas" must list {SEARCH_REQUEST!r}')
    known = {name.lower(): name for name in (*_TEXT, *_NUMBERS, *_LISTS)}
    query: dict[str, str] = {}
    for key, value in body.items():
        name = known.get(key.lower()) if isinstance(key, str) else None
        if name is None or value is None:
            continue
        if name in _TEXT:
            if not isinstance(value, str):
                raise invalid_value(f"{name} must be a string, got {shown(value)}")
            query[name] = value
        elif name in _NUMBERS:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise invalid_value(f"{name} must be an integer, got {shown(value)}")
            query[name] = str(value)
        else:
            if isinstance(value, str):
                query[name] = value
            elif isinstance(value, list) and all(isinstance(v, str) for v in value):
                query[name] = ",".join(value)
            else:
                raise invalid_value(f"{name} must be a list of attribute names, got {shown(value)}")
    return query


def page_split(start_index: int, count: int, first_total: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(offset, limit) in the first and in the second list of a concatenation, for a page that starts at
    `start_index` (1-based) and holds at most `count` resources, the first list having `first_total`."""
    offset = start_index - 1
    first_limit = max(0, min(count, first_total - offset))
    second_offset = max(0, offset - first_total)
    return (min(offset, first_total), first_limit), (second_offset, count - first_limit)
