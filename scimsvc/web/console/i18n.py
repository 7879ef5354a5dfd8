"""The console's languages: English (the text in the templates) and Japanese (the help pages' language).

A template writes `{{ _("Seats and licenses") }}` or `{{ _("{n} seats free", n=free) }}`; the English text
is the key. Japanese texts live in `locales/ja/*.json` (one file per area, `{"English": "日本語"}`), merged
at import; a text with no translation is shown in English. The language is the `scimsvc_lang` cookie the
switch sets, else the best of the browser's `Accept-Language`, else English.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web

from scimsvc.web.keys import SETTINGS

LANGUAGES = ("en", "ja")
DEFAULT = "en"
LANG_COOKIE = "scimsvc_lang"
LANG_COOKIE_SECONDS = 365 * 24 * 3600
LANGUAGE_PATH = "/console/language"  # the switch (any session, the sign-in page's anonymous one too)
HOME = "/console/"
LOCALES = Path(__file__).parent / "locales"
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
_SAFE_PATH = re.compile(r"/console(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")

Translate = Callable[..., str]


@functools.cache
def catalogue(lang: str) -> Mapping[str, str]:
    """Every translated text of `lang` (empty for English)."""
    texts: dict[str, str] = {}
    for path in sorted((LOCALES / lang).glob("*.json")) if lang != DEFAULT else ():
        texts.update(json.loads(path.read_text(encoding="utf-8")))
    return texts


def accepted_language(header: str) -> str:
    """The first of `LANGUAGES` by the weights of an `Accept-Language` header (RFC 9110 §12.5.4)."""
    best, best_weight = DEFAULT, 0.0
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().lower().startswith("q="):
            if not _QVALUE.fullmatch(params.strip()[2:].strip()):
                continue  # not a weight of RFC 9110 (0 to 1, three decimals at most): ignore the entry
            weight = float(params.strip()[2:])
        primary = tag.strip().lower().split("-")[0]
        # Earlier entries win ties (a tiny decrement keeps the header's order).
        weight -= position * 1e-6
        if primary in LANGUAGES and weight > best_weight:
            best, best_weight = primary, weight
    return best


def request_language(request: web.Request) -> str:
    """The switch's cookie, else the browser's `Accept-Language`, else English."""
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return accepted_language(request.headers.get("Accept-Language", ""))


def translator(lang: str) -> Translate:
    """`_(text, **values)`: the text in `lang` (English when untranslated), with `{name}` filled in."""
    texts = catalogue(lang)

    def translate(text: str, **values: Any) -> str:
        shown = texts.get(text, text)
        return shown.format(**values) if values else shown

    return translate


def back_to(raw: str) -> str:
    """Where the switch sends the browser back: a path of this console (its query kept), else the console's
    home. Never another host or scheme, nor a path outside /console/: no open redirect."""
    if len(raw) > 2000 or not raw.isascii() or not raw.isprintable() or " " in raw or "\\" in raw:
        return HOME
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or parts.fragment or not _SAFE_PATH.fullmatch(parts.path):
        return HOME
    # The segments as the browser (and yarl, writing `Location`) reads them: `%2e%2e` is `..`.
    decoded = unquote(parts.path)
    if "\\" in decoded or not decoded.isprintable():
        return HOME
    segments = decoded.split("/")
    if ".." in segments or "." in segments or "" in segments[1:-1]:
        return HOME
    return raw


routes = web.RouteTableDef()


@routes.post(LANGUAGE_PATH)
async def switch_language(request: web.Request) -> web.Response:
    """The header's switch: remember the language for a year (`scimsvc_lang`) and go back to the page.
    The console's gate has checked the form's CSRF token, as on every POST."""
    form = await request.post()
    chosen, back = form.get("lang"), form.get("next")
    response = web.HTTPSeeOther(back_to(back if isinstance(back, str) else ""))
    if chosen in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            str(chosen),
            max_age=LANG_COOKIE_SECONDS,
            path="/console/",
            httponly=True,
            samesite="Strict",
            secure=request.app[SETTINGS].public_url.startswith("https://"),
        )
    raise response
