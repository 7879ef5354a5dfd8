"""What the product tells people, as text (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notice:
    to_address: str
    subject: str
    body: str


def email_change_notices(*, old: str, new: str, name: str) -> list[Notice]:
    """A userName (email) change is announced to BOTH the old and the new address (README.md, API surface)."""
    subject = "Your sign-in email has changed"
    body = (
        f"Hello {name},\n\n"
        f"Your organization's identity provider changed the email you sign in with from {old} to {new}.\n"
        f"From now on, sign in with {new}. Your content, teams and license stay as they were.\n\n"
        "If you did not expect this change, contact your administrator.\n"
    )
    return [Notice(old, subject, body), Notice(new, subject, body)]
