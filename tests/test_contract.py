"""The web↔worker contract (scimsvc/contract.py) is the one both sides speak: the jobs the front end
queues are the worker's, the resource types are the ones the outbox accepts, and the worker reaches the
front end's code only through the contract."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from scimsvc.contract import JOB_NAMES, ResourceType
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
