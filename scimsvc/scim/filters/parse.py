"""Filter text to a `tree`: the tokenizer, the grammar (precedence, nesting, value literals) and its errors.

Every syntax error is an invalid_filter (400) naming the position of the problem; limits on length and
depth keep a hostile filter cheap. Attribute names are not looked up here (`names` does that), no value is
given a meaning (`rules`), and nothing does I/O.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from scimsvc.scim.errors import invalid_filter
from scimsvc.scim.filters.tree import COMPARE_OPS, And, Compare, Node, Not, Or, Present, Value, ValuePath

MAX_LENGTH = 10_000
MAX_DEPTH = 50


def quote(text: str) -> str:
    """`text` quoted for an error message, shortened if long."""
    return json.dumps(text if len(text) <= 60 else text[:60] + "…", ensure_ascii=False)


# --- Tokenizer ---------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s*")
_WORD = re.compile(r"[A-Za-z0-9_:.$+-]+")  # attribute paths, operators, keywords, numbers
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")  # a JSON number
_ATTR_PATH = re.compile(
    r"(?:[A-Za-z][A-Za-z0-9._:-]*:)?[A-Za-z$][A-Za-z0-9_$-]*(?:\.[A-Za-z$][A-Za-z0-9_$-]*)?", re.ASCII
)
_JSON = json.JSONDecoder()  # decodes one JSON string token (escapes, \uXXXX)
_LITERALS: dict[str, Value] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class _Token:
    kind: str  # "(" ")" "[" "]" "word" "string" "end"
    text: str
    pos: int
    value: str = ""  # the decoded string of a "string" token

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "end" else quote(self.text)


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while True:
        match = _SPACE.match(text, pos)
        pos = match.end() if match else pos
        if pos >= len(text):
            tokens.append(_Token("end", "", len(text)))
            return tokens
        char = text[pos]
        if char in "()[]":
            tokens.append(_Token(char, char, pos))
            pos += 1
        elif char == '"':
            try:
                value, end = _JSON.raw_decode(text, pos)
            except json.JSONDecodeError as exc:
                reason = exc.msg.removesuffix(" at").removesuffix(" starting").lower()
                raise invalid_filter(f"invalid string at position {exc.pos}: {reason}") from None
            if any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value):
                raise invalid_filter(f"the string at position {pos} contains a NUL or an unpaired surrogate")
            tokens.append(_Token("string", text[pos:end], pos, value))
            pos = end
        else:
            word = _WORD.match(text, pos)
            if word is None:
                raise invalid_filter(f"unexpected character {quote(char)} at position {pos}")
            tokens.append(_Token("word", word.group(), pos))
            pos = word.end()


# --- Parser ------------------------------------------------------------------------------------------


def parse_filter(text: str) -> Node:
    """Parse an RFC 7644 §3.4.2.2 filter; raises invalid_filter (400) with the position of the problem.

    Precedence is not > and > or; chains of one operator become balanced trees so that no later walk
    recurses deeply. Attribute names are not checked here (compile_filter and matches do that).
    """
    if len(text) > MAX_LENGTH:
        raise invalid_filter(f"the filter is longer than {MAX_LENGTH} characters")
    if (simple := _SIMPLE_EQ.fullmatch(text)) and simple[1].lower() not in _KEYWORDS:
        return Compare(simple[1], "eq", simple[2])
    return _Parser(text).parse()


# The shape IdPs look users and groups up by before every write (`userName eq "..."`, `displayName eq
# "..."`): one attribute path, `eq`, a string without escapes. It gives the node the grammar gives, without
# tokens (tests/test_filters.py holds the two to the same results); anything else takes the grammar.
_SIMPLE_EQ = re.compile(
    r"\s*((?:[A-Za-z][A-Za-z0-9._:-]*:)?[A-Za-z$][A-Za-z0-9_$-]*(?:\.[A-Za-z$][A-Za-z0-9_$-]*)?)"
    r"\s+[eE][qQ]\s+\"([^\"\\\x00-\x1f\ud800-\udfff]*)\"\s*"
)
_KEYWORDS = frozenset({"and", "or", "not"})


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "word" and token.text.lower() == word

    def parse(self) -> Node:
        if self.peek().kind == "end":
            raise invalid_filter("the filter is empty")
        node = self.disjunction(inner=False)
        token = self.peek()
        if token.kind != "end":
            raise invalid_filter(
                f'unexpected {token.describe()} at position {token.pos}; expected "and", "or" or the end'
            )
        return node

    def disjunction(self, *, inner: bool) -> Node:
        terms = [self.conjunction(inner=inner)]
        while self.at_keyword("or"):
            self.take()
            terms.append(self.conjunction(inner=inner))
        return _balanced(Or, terms)

    def conjunction(self, *, inner: bool) -> Node:
        terms = [self.term(inner=inner)]
        while self.at_keyword("and"):
            self.take()
            terms.append(self.term(inner=inner))
        return _balanced(And, terms)

    def term(self, *, inner: bool) -> Node:
        if self.peek().kind == "(":
            return self.group(inner=inner)
        if self.at_keyword("not"):
            self.take()
            if self.peek().kind != "(":
                token = self.peek()
                raise invalid_filter(
                    f'expected "(" after "not" at position {token.pos}, found {token.describe()}'
                )
            return Not(self.group(inner=inner))
        return self.attribute_expression(inner=inner)

    def group(self, *, inner: bool) -> Node:
        opening = self.open()
        node = self.disjunction(inner=inner)
        self.close(")", opening)
        return node

    def open(self) -> _Token:
        token = self.take()
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise invalid_filter(f"the filter nests deeper than {MAX_DEPTH} levels (at position {token.pos})")
        return token

    def close(self, kind: str, opening: _Token) -> None:
        token = self.take()
        if token.kind != kind:
            raise invalid_filter(
                f'expected "{kind}" at position {token.pos} to close "{opening.text}" at position '
                f"{opening.pos}, found {token.describe()}"
            )
        self.depth -= 1

    def attribute_expression(self, *, inner: bool) -> Node:
        token = self.take()
        if token.kind != "word":
            raise invalid_filter(
                f"expected an attribute name at position {token.pos}, found {token.describe()}"
            )
        if not _ATTR_PATH.fullmatch(token.text):
            raise invalid_filter(f"{quote(token.text)} at position {token.pos} is not an attribute name")
        path = token.text
        following = self.peek()
        if following.kind == "[":
            if inner:
                raise invalid_filter(f'value filters cannot be nested: "[" at position {following.pos}')
            opening = self.open()
            node = self.disjunction(inner=True)
            self.close("]", opening)
            return ValuePath(path, node)
        if following.kind != "word":
            raise invalid_filter(
                f"expected an operator after {quote(path)} at position {following.pos}, "
                f"found {following.describe()}"
            )
        self.take()
        op = following.text.lower()
        if op == "pr":
            return Present(path)
        if op not in COMPARE_OPS:
            raise invalid_filter(
                f"unknown operator {quote(following.text)} at position {following.pos}; "
                "use eq, ne, co, sw, ew, gt, ge, lt, le or pr"
            )
        return Compare(path, op, self.value(following))

    def value(self, op: _Token) -> Value:
        token = self.take()
        if token.kind == "string":
            return token.value
        if token.kind == "word":
            if token.text.lower() in _LITERALS:
                return _LITERALS[token.text.lower()]
            number = NUMBER.fullmatch(token.text)
            if number is not None:
                return _number(token, is_int=number.group(1) is None and number.group(2) is None)
            raise invalid_filter(
                f"expected a value after {quote(op.text)} at position {token.pos}, found {token.describe()} "
                "(strings go in double quotes)"
            )
        raise invalid_filter(
            f"expected a value after {quote(op.text)} at position {token.pos}, found {token.describe()}"
        )


def _number(token: _Token, *, is_int: bool) -> int | float:
    """An int of any size Python converts (4,300 digits), or a finite float; else out of range (400)."""
    try:
        value: int | float = int(token.text) if is_int else float(token.text)
    except ValueError:  # more digits than int() converts
        value = math.inf
    # math.isfinite(int) converts to float and raises OverflowError past 1e308: ints are always finite.
    if isinstance(value, float) and not math.isfinite(value):
        raise invalid_filter(f"the number at position {token.pos} is out of range")
    return value


def _balanced(cls: type[And] | type[Or], terms: list[Node]) -> Node:
    """`a op b op c ...` as a tree of depth log2(n) (left-associative for up to three terms)."""
    if len(terms) == 1:
        return terms[0]
    middle = (len(terms) + 1) // 2
    return cls(_balanced(cls, terms[:middle]), _balanced(cls, terms[middle:]))
