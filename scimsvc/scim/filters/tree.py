"""The parsed form of an RFC 7644 §3.4.2.2 filter, as `parse.parse_filter` produces it.

Plain frozen nodes: attribute paths as written, operators lower-cased, values as JSON gave them. It never
holds a rule about what a comparison means (`rules`), a catalog lookup (`names`), SQL or I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

Value = str | bool | int | float | None

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


@dataclass(frozen=True)
class Compare:
    """`attr op value`; `attr` is the path as written (`userName`, `emails.value`, `urn:...:User:x`)."""

    attr: str
    op: str  # lower-case, one of COMPARE_OPS
    value: Value


@dataclass(frozen=True)
class Present:
    """`attr pr`."""

    attr: str


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    expr: Node


@dataclass(frozen=True)
class ValuePath:
    """`attr[filter]`: some element of the multi-valued `attr` matches `filter`.

    Attribute names inside `filter` are relative to the element (`emails[type eq "work"]`).
    """

    attr: str
    filter: Node


Node = Compare | Present | And | Or | Not | ValuePath
