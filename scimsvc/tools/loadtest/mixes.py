"""Which actions an IdP sends, and how often: the named mixes and the next action of a worker.

Each action is one IdP step of one or more requests (`scimsvc.tools.loadtest.driver.Driver.ACTIONS`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

MIXES: dict[str, dict[str, int]] = {
    # Okta: look up by userName before creating, update with PUT, deactivate with PATCH active=false,
    # import by paging, push group members (single and batched).
    "okta": {
        "create": 15,
        "lookup": 20,
        "get": 10,
        "put": 25,
        "deactivate": 10,
        "list": 5,
        "group_member": 10,
        "group_batch": 5,
    },
    # Entra: many userName-eq probes, PATCH with "Replace" and string booleans, member add/remove.
    "entra": {"create": 10, "lookup": 35, "get": 5, "patch": 25, "deactivate": 10, "group_member": 15},
    "writes": {"create": 30, "put": 20, "patch": 25, "deactivate": 15, "group_member": 10},
    "reads": {"lookup": 45, "get": 40, "list": 15},
}
MIX_STYLE = {"okta": "okta", "entra": "entra"}  # other mixes alternate between the two IdPs' shapes
GROUP_ACTIONS = frozenset({"group_member", "group_batch"})
NEEDS_USER = frozenset({"lookup", "get", "put", "patch", "deactivate", "group_member", "group_batch"})
MIN_POOL = 5  # actions on an existing user create one instead until the run owns this many


def choose_action(mix: Mapping[str, int], rng: random.Random, *, pool_size: int, has_group: bool) -> str:
    """The next action of a worker: by weight; a create while the pool is small; no group without one."""
    weights = {a: w for a, w in mix.items() if has_group or a not in GROUP_ACTIONS}
    if not weights:
        weights = {"get": 1}
    action = rng.choices(list(weights), weights=list(weights.values()))[0]
    if action in NEEDS_USER and pool_size < MIN_POOL:
        return "create"
    return action
