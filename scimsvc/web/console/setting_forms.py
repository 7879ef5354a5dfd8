"""The organization's settings forms (seats page, settings page) → `TenantSettingsSchema` payloads, with
errors a person can act on for what a form lets them type wrong (the schema still decides the rest), in the
page's language (`_`, from `pages.texts`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from schemas.admin import is_domain
from scimsvc.scim.errors import invalid_value
from scimsvc.web.console.forms import number, text, words
from scimsvc.web.console.i18n import Translate

MAX_LINES = 1000
MAX_SEATS = 10_000_000  # as TenantSettingsSchema.seats
MIN_CREDITS, MAX_CREDITS = 2000, 1_000_000_000  # as RateLimitSchema.credits_per_30s
MAX_DOMAIN = 253
DELETED_TEAM = "(deleted team)"  # a domain team whose team was deleted, as the form shows it


def seats(form: Mapping[str, Any], _: Translate) -> int:
    """The seats typed: a whole number, 0 or more."""
    value = number(text(form, "seats"))
    if not isinstance(value, int) or not 0 <= value <= MAX_SEATS:
        raise invalid_value(
            _("Seats must be a whole number from 0 to {most} (for example 25).", most=f"{MAX_SEATS:,}")
        )
    return value


def license_rules(form: Mapping[str, Any], _: Translate) -> dict[str, Any]:
    """The flexible program, the default license and the fallback license."""
    default, fallback = text(form, "default_license"), text(form, "fallback_license")
    if default not in ("free", "free_restricted"):
        raise invalid_value(
            _("Choose the default license from the list: the Free license or the Restricted free license.")
        )
    if fallback not in ("free_restricted", "none"):
        raise invalid_value(
            _(
                "Choose what a user gets when no seat is free from the list: a restricted free license, "
                "or none."
            )
        )
    return {
        "flexible_licenses": form.get("flexible_licenses") == "on",
        "default_license": default,
        "fallback_license": fallback,
    }


def _lines(raw: str, _: Translate) -> list[str]:
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    if len(lines) > MAX_LINES:
        raise invalid_value(_("Write at most {most} lines.", most=MAX_LINES))
    return lines


def _email_domains(domains: list[str], wrong: str, _: Translate) -> list[str]:
    """`domains` when each is an email domain, else a 400 with `wrong` (an English text with `{domain}`,
    translated by `_`) naming the first that is not."""
    for domain in domains:
        if len(domain) > MAX_DOMAIN or not is_domain(domain):
            raise invalid_value(_(wrong, domain=domain))
    return domains


def allowed_domains(form: Mapping[str, Any], _: Translate) -> list[str]:
    """The allowed domains, one per line (none: every domain is allowed)."""
    wrong = "Allowed domains: “{domain}” is not an email domain. Write one domain per line, like example.com."
    return _email_domains(_lines(text(form, "allowed_domains"), _), wrong, _)


def domain_teams(form: Mapping[str, Any], team_ids: Mapping[str, UUID], _: Translate) -> dict[str, list[str]]:
    """Domain teams, one `domain: team name` per line (a domain's several teams on several lines), the
    teams named as on the Teams page (`team_ids`: id by name)."""
    joined: dict[str, list[str]] = {}
    for line in _lines(text(form, "domain_teams"), _):
        domain, colon, team = (part.strip() for part in line.partition(":"))
        if not colon or not domain or not team:
            raise invalid_value(
                _(
                    "Domain teams: “{line}” is not “domain: team name”. Write one team per line, like "
                    "example.com: Engineering.",
                    line=line,
                )
            )
        if len(domain) > MAX_DOMAIN or not is_domain(domain):
            raise invalid_value(
                _("Domain teams: “{domain}” is not an email domain (such as example.com).", domain=domain)
            )
        if team == DELETED_TEAM:
            continue  # its team was deleted: saving drops the line (the form says so)
        if team not in team_ids:
            raise invalid_value(
                _(
                    "Domain teams: there is no team named “{team}”. Create it on the Teams page first, or "
                    "correct the name (names are matched exactly).",
                    team=team,
                )
            )
        joined.setdefault(domain, []).append(str(team_ids[team]))
    return joined


def domain_team_lines(domain_teams: Mapping[str, list[str]], team_names: Mapping[str, str]) -> str:
    """The stored domain teams as the form shows them: `domain: team name` lines (a team that was deleted
    shown as `DELETED_TEAM`, which saving drops)."""
    return "\n".join(
        f"{domain}: {team}"
        for domain, ids in sorted(domain_teams.items())
        for team in sorted(team_names.get(team_id, DELETED_TEAM) for team_id in ids)
    )


RATE_PRESETS = ("default", "strict", "off")
MAX_NAME = 200  # as TenantSettingsSchema.name


def organization(form: Mapping[str, Any], _: Translate) -> dict[str, Any]:
    """The organization's name and SCIM rate limit (a preset, and credits per 30 s that override it)."""
    preset = text(form, "preset")
    if preset not in RATE_PRESETS:
        raise invalid_value(_("Choose the SCIM rate limit from the list: default, strict or off."))
    rate_limit: dict[str, Any] = {"preset": preset}
    if credits := text(form, "credits_per_30s"):
        value = number(credits)
        if not isinstance(value, int) or not MIN_CREDITS <= value <= MAX_CREDITS:
            raise invalid_value(
                _(
                    "Credits per 30 seconds must be a whole number from {least} (one request of the "
                    "heaviest kind) to {most}, or left empty to use the preset.",
                    least=f"{MIN_CREDITS:,}",
                    most=f"{MAX_CREDITS:,}",
                )
            )
        rate_limit["credits_per_30s"] = value
    return {"name": _name(form, _), "rate_limit": rate_limit}


def _name(form: Mapping[str, Any], _: Translate) -> str:
    name = text(form, "name")
    if not 1 <= len(name) <= MAX_NAME:
        raise invalid_value(_("The organization's name must be 1 to {most} characters.", most=MAX_NAME))
    if "\x00" in name:
        raise invalid_value(_("The organization's name cannot contain the NUL character (\\0): remove it."))
    return name


def new_organization(form: Mapping[str, Any], _: Translate) -> dict[str, Any]:
    """The operator's new-organization form (tenants page) as a `TenantCreateSchema` payload; a field left
    out (seats, the licenses) takes the schema's default."""
    payload: dict[str, Any] = {"name": _name(form, _), "scim_enabled": form.get("scim_enabled") == "on"}
    if text(form, "seats"):
        payload["seats"] = seats(form, _)
    payload["flexible_licenses"] = form.get("flexible_licenses") == "on"
    default, fallback = text(form, "default_license"), text(form, "fallback_license")
    if default or fallback:  # as the settings page chooses them (an empty one: the schema's default)
        chosen = {"default_license": default or "free", "fallback_license": fallback or "free_restricted"}
        rules = license_rules(chosen, _)
        payload.update({k: rules[k] for k in ("default_license", "fallback_license") if text(form, k)})
    domains = words(text(form, "allowed_domains"))
    if len(domains) > MAX_LINES:
        raise invalid_value(_("Write at most {most} allowed domains.", most=MAX_LINES))
    wrong = (
        "Allowed email domains: “{domain}” is not an email domain. Separate domains with commas or spaces, "
        "like example.com, example.org."
    )
    _email_domains(domains, wrong, _)
    if domains:
        payload["allowed_domains"] = domains
    return payload
