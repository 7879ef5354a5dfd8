"""What every SCIM marshmallow schema shares: unknown attributes ignored, names case-insensitive."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load


class ScimSchema(Schema):
    """A SCIM resource or sub-resource schema.

    RFC 7643 §2.1: attribute names are case-insensitive, so incoming keys are mapped onto the
    declared ones; §2.5: null and an empty list mean "unassigned", so they are dropped; RFC 7644
    §3.3: unknown attributes are ignored, never an error (`unknown = EXCLUDE`).
    """

    class Meta:
        unknown = EXCLUDE

    @cached_property
    def _known_keys(self) -> dict[str, str]:
        """Each declared attribute name, as spelled and lower-cased, to its spelling (fields are fixed once
        built): a key as IdPs send it is found without lowering it."""
        names = [f.data_key or f.name or "" for f in self.fields.values()]
        return {**{name.lower(): name for name in names}, **{name: name for name in names}}

    @pre_load
    def canonical_keys(self, data: Any, **_: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("must be a JSON object")
        known = self._known_keys
        result: dict[Any, Any] = {}
        for key, value in data.items():
            if value is None or value == []:
                continue
            name = known.get(key)
            if name is None:
                name = known.get(key.lower(), key) if isinstance(key, str) else key
            result[name] = value
        return result


class Text(fields.String):
    """A string PostgreSQL can store: NUL (U+0000) is refused with a clear message, not a database error."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain the NUL character (\\u0000)")
        return text


class Name(Text):
    """A name people read and click (an organization's, a team's): at least one visible character.

    Only spaces or invisible characters (format, control) would make an empty link in the console."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if text and not any(ch.isprintable() and not ch.isspace() for ch in text):
            raise ValidationError("must contain a visible character, not only spaces or invisible characters")
        return text


class ScimString(Text):
    """A SCIM string; IdPs sometimes send numbers (`"employeeNumber": 42`), which are kept as text."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class JsonBoolean(fields.Boolean):
    """JSON `true` or `false` and nothing else: not marshmallow's lenient 1, "yes", "on", 0 or "off" (the
    admin API's and the portal's flags; SCIM's booleans are `ScimBoolean`)."""

    default_error_messages = {"invalid": "must be true or false (a JSON boolean)"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value is True or value is False:
            return value
        raise self.make_error("invalid")


class ScimBoolean(fields.Boolean):
    """A SCIM boolean; Entra sends `"True"`/`"False"` strings, accepted case-insensitively."""

    truthy = {"true", "True", "TRUE", True, "1"}
    falsy = {"false", "False", "FALSE", False, "0"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
        return super()._deserialize(value, attr, data, **kwargs)


def flatten_errors(messages: Any, prefix: str = "") -> list[str]:
    """Turn marshmallow's nested error dict into `path: message` lines a person can act on."""
    if isinstance(messages, dict):
        lines: list[str] = []
        for key, value in messages.items():
            if key == "_schema":
                lines.extend(flatten_errors(value, prefix))
                continue
            path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            lines.extend(flatten_errors(value, path))
        return lines
    if isinstance(messages, list):
        lines = []
        for item in messages:
            lines.extend(flatten_errors(item, prefix))
        return lines
    return [f"{prefix}: {messages}" if prefix else str(messages)]
