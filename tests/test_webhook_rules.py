"""The pure webhook rules (scimsvc/product/webhooks.py): which resolved addresses a delivery may reach."""

from __future__ import annotations

import pytest

from scimsvc.product.webhooks import address_problem
from scimsvc.settings import parse_networks


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "127.0.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "fd00::1",
        "fec0::1",  # site-local (deprecated, still not public)
        "::ffff:169.254.169.254",  # IPv4-mapped
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
        "0.0.0.0",
        "224.0.0.1",
        "not an address",
    ],
)
def test_private_and_disguised_addresses_are_refused(address):
    assert address_problem(address, allowed=()) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_public_addresses_are_allowed(address):
    assert address_problem(address, allowed=()) is None


def test_an_operator_may_allow_a_private_network_and_only_that_one():
    allowed = parse_networks("127.0.0.1/32, 10.1.0.0/16")
    assert address_problem("127.0.0.1", allowed=allowed) is None
    assert address_problem("::ffff:127.0.0.1", allowed=allowed) is None
    assert address_problem("10.1.2.3", allowed=allowed) is None
    assert address_problem("10.2.0.1", allowed=allowed) is not None
    assert address_problem("127.0.0.2", allowed=allowed) is not None
