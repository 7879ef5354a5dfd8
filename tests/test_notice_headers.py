"""Notice emails carry the headers mail servers expect of well-behaved mail: Date and a unique Message-ID
made under the sender's domain (SCIMSVC_SMTP_FROM)."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from tests.conftest import post_user, run_worker, unique_email
from tests.test_notices import rename

SENDER = "Acme IT <it-notices@acme.example>"
MESSAGE_ID = re.compile(r"<[^<>@\s]+@acme\.example>")


async def test_every_notice_has_a_date_and_a_message_id_of_its_own(client, tenant, settings, smtp):  # noqa: F811
    inbox, port = smtp
    user = await post_user(client, tenant)
    addresses = {user["userName"]}
    before = datetime.now(UTC)
    for _ in range(2):  # two email changes: four notices, old and new address each time
        new = unique_email("moved")
        resp = await rename(client, tenant, user, new)
        assert resp.status == 200, await resp.text()
        addresses.add(new)

    await run_worker(dataclasses.replace(settings, smtp_url=f"smtp://127.0.0.1:{port}", smtp_from=SENDER))
    after = datetime.now(UTC)

    received = [msg for rcpt, msg in inbox.messages if set(rcpt) <= addresses]
    assert len(received) == 4
    ids = []
    for msg in received:
        assert len(msg.get_all("Date", [])) == 1 and len(msg.get_all("Message-ID", [])) == 1
        sent = parsedate_to_datetime(msg["Date"])
        assert sent.utcoffset() == timedelta(0), msg["Date"]  # GMT, as RFC 5322 readers prefer
        # Date has whole seconds: the sending moment, rounded down, lies between these two.
        assert before - timedelta(seconds=1) <= sent <= after, (msg["Date"], before, after)
        assert MESSAGE_ID.fullmatch(msg["Message-ID"]), msg["Message-ID"]
        ids.append(msg["Message-ID"])
    assert len(set(ids)) == len(ids)
