"""The web↔worker contract (scimsvc/contract.py) is the one both sides speak: the jobs the front end
queues are the worker's, the resource types are the ones the outbox accepts, and the worker reaches the
front end's code only through the contract."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from scimsvc.contract import JOB_NAMES, ResourceType
from scimsvc.store import new_users, user_deletes, user_updates
from worker.settings import worker_settings

WORKER = Path(__file__).resolve().parent.parent / "worker"


def test_the_worker_runs_every_job_of_the_contract_under_its_name(settings):
    names = {function.name for function in worker_settings(settings)["functions"]}
    assert names == set(JOB_NAMES)


async def test_the_outbox_accepts_exactly_the_resource_types_of_the_contract(db):
    check = await db.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'outbox_resource_type_check'"
    )
    assert set(re.findall(r"'(\w+)'", check)) == {str(kind) for kind in ResourceType}


def test_the_worker_imports_the_contract_and_the_store_never_the_web_or_the_services():
    imported = set()
    for path in WORKER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    assert "scimsvc.contract" in imported
    assert not {m for m in imported if m.startswith(("scimsvc.web", "scimsvc.services"))}


def test_outbox_rows_are_inserted_by_one_statement_text_of_the_outbox_module():
    """Every statement that writes outbox rows builds that part with store/outbox.py, whose column list
    and resource-type spelling are then the only ones (a fast path is an implementation, not a door)."""
    store = WORKER.parent / "scimsvc" / "store"
    writers = {
        path.name
        for path in store.glob("*.py")
        if "INSERT INTO outbox" in path.read_text().replace("\n", " ")
    }
    assert writers == {"outbox.py"}
    for statement in (
        new_users.INSERT_NEW_USER,
        new_users.INSERT_NEW_USERS,
        user_updates.UPDATE_USER_AS_EXPECTED,
        user_updates.UPDATE_USERS_AS_EXPECTED,
        user_deletes.DELETE_LINKED_USER,
        user_deletes.DELETE_LINKED_USERS,
    ):
        assert (
            "INSERT INTO outbox (tenant_id, resource_type, resource_id, change, payload, request_id)"
            in statement
        )
