"""A bounded set whose members expire: credentials refused lately, remembered by their hash."""

from __future__ import annotations

import time
from collections.abc import Hashable


class ExpiringSet:
    """Members kept for `seconds` each; past `max_entries`, the oldest go first."""

    def __init__(self, *, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._until: dict[Hashable, float] = {}  # insertion order is age order: every add re-inserts

    def __contains__(self, member: Hashable) -> bool:
        until = self._until.get(member)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._until[member]
            return False
        return True

    def add(self, member: Hashable) -> None:
        """Remember `member` for `seconds` from now."""
        self._until.pop(member, None)
        while len(self._until) >= self.max_entries:
            del self._until[next(iter(self._until))]
        self._until[member] = time.monotonic() + self.seconds

    def __len__(self) -> int:
        return len(self._until)
