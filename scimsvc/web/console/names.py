"""The words a page shows for the codes the product stores (a license, an IdP family, ...): one place for
each, in English; a template translates them with `_` like any other text (their Japanese is in
locales/ja/names.json). Registered as template globals by `setup_console`."""

from __future__ import annotations

# The help pages' names of the licenses (フルライセンス, 無料ライセンス, 制限付き無料ライセンス).
LICENSES = {
    "full": "Full license",
    "free": "Free license",
    "free_restricted": "Restricted free license",
}
NO_LICENSE = "No license"
IDPS = {"okta": "Okta", "entra": "Microsoft Entra ID"}
OTHER_IDP = "another client"


def license_name(code: str | None) -> str:
    """A license as the help pages name it; no license (None, "none") is "No license"."""
    return LICENSES.get(code or "", NO_LICENSE if code in (None, "", "none") else str(code))


def idp_name(family: str | None) -> str:
    """The identity provider a request came from (`web/access_log.py:idp_family`)."""
    return IDPS.get(family or "", OTHER_IDP)


GLOBALS = {"license_name": license_name, "idp_name": idp_name}
