"""SCIM endpoints as IdPs and their test suites spell them: any case, with or without a trailing slash.

RFC 7644 names endpoints `/Users`, `/Groups`, ...; Microsoft's SCIM test collection also sends `/users`
and `/Users/`. aiohttp matches paths exactly, so one last resource under the SCIM prefix catches what
nothing else matched, rewrites the endpoint's fixed segments to their registered spelling (ids are kept
as sent) and drops one trailing slash, then resolves that path. The request reaches the same handler
through the same route, so its route template, rate-limit level and metrics labels are the canonical
endpoint's. A correctly spelled path never comes here: only what would have been a 404 pays for it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from aiohttp import web
from aiohttp.web_urldispatcher import (
    AbstractResource,
    AbstractRoute,
    MatchInfoError,
    UrlDispatcher,
    UrlMappingMatchInfo,
)
from yarl import URL

Template = tuple[str | None, ...]  # a route's segments after the prefix; None for a {variable}


def templates(canonicals: Sequence[str], prefix: str) -> tuple[Template, ...]:
    """The segments of every route under `prefix` (`/scim/v2/Users/{id}` → ("Users", None))."""
    found = []
    for canonical in canonicals:
        if canonical.startswith(prefix + "/"):
            parts = canonical[len(prefix) + 1 :].split("/")
            found.append(tuple(None if p.startswith("{") else p for p in parts))
    return tuple(found)


def canonical_path(raw_path: str, prefix: str, routes: Sequence[Template]) -> str | None:
    """`raw_path` with its fixed segments spelled as the matching route spells them and no trailing
    slash, or None when no route under `prefix` matches it case-insensitively."""
    if not raw_path.startswith(prefix + "/"):
        return None
    parts = raw_path[len(prefix) + 1 :].split("/")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # one trailing slash
    for template in routes:
        if len(template) != len(parts):
            continue
        spelled = []
        for want, got in zip(template, parts, strict=True):
            if want is None:
                if not got:
                    break
                spelled.append(got)
            elif want.lower() == got.lower():
                spelled.append(want)
            else:
                break
        else:
            return prefix + "/" + "/".join(spelled)
    return None


class ScimPathAliases(AbstractResource):
    """Resolves a SCIM endpoint spelled in another case, or with a trailing slash, to its own route."""

    def __init__(self, router: UrlDispatcher, prefix: str) -> None:
        super().__init__()
        self._router = router
        self._prefix = prefix
        self._routes = templates([r.canonical for r in router.resources()], prefix)

    @property
    def canonical(self) -> str:
        return self._prefix

    def url_for(self, **kwargs: str) -> URL:
        return URL.build(path=self._prefix)

    async def resolve(self, request: web.Request) -> tuple[UrlMappingMatchInfo | None, set[str]]:
        raw = request.rel_url.raw_path
        path = canonical_path(raw, self._prefix, self._routes)
        if path is None or path == raw:
            return None, set()
        match = await self._router.resolve(request.clone(rel_url=URL.build(path=path, encoded=True)))
        if isinstance(match, MatchInfoError):
            return None, set(getattr(match.http_exception, "allowed_methods", ()))
        return match, set()

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("SCIM path aliases are not added to sub-applications")

    def get_info(self) -> dict[str, str]:  # type: ignore[override]
        return {"prefix": self._prefix}

    def raw_match(self, path: str) -> bool:
        return False

    def __len__(self) -> int:
        return 0

    def __iter__(self) -> Iterator[AbstractRoute]:
        return iter(())


def add_scim_path_aliases(app: web.Application, prefix: str) -> None:
    """After every SCIM route is added: serve their other spellings too."""
    app.router.register_resource(ScimPathAliases(app.router, prefix))
