"""The organization's settings forms (seats page, settings page) → `TenantSettingsSchema` payloads, with
errors a person can act on for what a form lets them type wrong (the schema still decides the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from schemas.admin import is_domain
from scimsvc.scim.errors import invalid_value
from scimsvc.web.console.forms import number, text

MAX_LINES = 1000


def seats(form: Mapping[str, Any]) -> int:
    """The seats typed: a whole number, 0 or more."""
    value = number(text(form, "seats"))
    if not isinstance(value, int) or value < 0:
        raise invalid_value("Seats must be a whole number, 0 or more (for example 25).")
    return value


def license_rules(form: Mapping[str, Any]) -> dict[str, Any]:
    """The flexible program, the default license and the fallback license."""
    return {
        "flexible_licenses": form.get("flexible_licenses") == "on",
        "default_license": text(form, "default_license"),
        "fallback_license": text(form, "fallback_license"),
    }


def _lines(raw: str) -> list[str]:
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    if len(lines) > MAX_LINES:
        raise invalid_value(f"Write at most {MAX_LINES} lines.")
    return lines


def allowed_domains(form: Mapping[str, Any]) -> list[str]:
    """The allowed domains, one per line (none: every domain is allowed)."""
    domains = _lines(text(form, "allowed_domains"))
    for domain in domains:
        if not is_domain(domain):
            raise invalid_value(
                f"Allowed domains: “{domain}” is not an email domain. "
                "Write one domain per line, like example.com."
            )
    return domains


def domain_teams(form: Mapping[str, Any], team_ids: Mapping[str, UUID]) -> dict[str, list[str]]:
    """Domain teams, one `domain: team name` per line (a domain's several teams on several lines), the
    teams named as on the Teams page (`team_ids`: id by name)."""
    joined: dict[str, list[str]] = {}
    for line in _lines(text(form, "domain_teams")):
        domain, colon, team = (part.strip() for part in line.partition(":"))
        if not colon or not domain or not team:
            raise invalid_value(
                f"Domain teams: “{line}” is not “domain: team name”. Write one team per line, like "
                "example.com: Engineering."
            )
        if not is_domain(domain):
            raise invalid_value(f"Domain teams: “{domain}” is not an email domain (such as example.com).")
        if team not in team_ids:
            raise invalid_value(
                f"Domain teams: there is no team named “{team}”. Create it on the Teams page first, or "
                "correct the name (names are matched exactly)."
            )
        joined.setdefault(domain, []).append(str(team_ids[team]))
    return joined


def domain_team_lines(domain_teams: Mapping[str, list[str]], team_names: Mapping[str, str]) -> str:
    """The stored domain teams as the form shows them: `domain: team name` lines (an id whose team is gone
    shown as the id)."""
    return "\n".join(
        f"{domain}: {team}"
        for domain, ids in sorted(domain_teams.items())
        for team in sorted(team_names.get(team_id, team_id) for team_id in ids)
    )


RATE_PRESETS = ("default", "strict", "off")
MAX_NAME = 200  # as TenantSettingsSchema.name


def organization(form: Mapping[str, Any]) -> dict[str, Any]:
    """The organization's name and SCIM rate limit (a preset, and credits per 30 s that override it)."""
    rate_limit: dict[str, Any] = {"preset": text(form, "preset")}
    if credits := text(form, "credits_per_30s"):
        value = number(credits)
        if not isinstance(value, int):
            raise invalid_value(
                "Credits per 30 seconds must be a whole number, or left empty to use the preset."
            )
        rate_limit["credits_per_30s"] = value
    name = text(form, "name")
    if not 1 <= len(name) <= MAX_NAME:
        raise invalid_value(f"The organization's name must be 1 to {MAX_NAME} characters.")
    return {"name": name, "rate_limit": rate_limit}
