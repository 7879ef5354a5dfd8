"""The console's languages: English (the text in the templates) and Japanese (the help pages' language).

A template writes `{{ _("Seats and licenses") }}` or `{{ _("{n} seats free", n=free) }}`; the English text
is the key. Japanese texts live in `locales/ja/*.json` (one file per area, `{"English": "日本語"}`), merged
at import; a text with no translation is shown in English. The language is the `scimsvc_lang` cookie the
switch sets, else the best of the browser's `Accept-Language`, else English.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

LANGUAGES = ("en", "ja")
DEFAULT = "en"
LANG_COOKIE = "scimsvc_lang"
LOCALES = Path(__file__).parent / "locales"

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
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
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
