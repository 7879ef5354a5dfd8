"""The layers of ARCHITECTURE.md hold: who may import whom, read from the source of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "scimsvc"


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def modules(*folders: str) -> list[Path]:
    return sorted(path for folder in folders for path in (PACKAGE / folder).rglob("*.py"))


def importing(paths: list[Path], *prefixes: str) -> dict[str, set[str]]:
    found = {}
    for path in paths:
        bad = {name for name in imports_of(path) if name.startswith(prefixes)}
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_nothing_but_the_web_layer_and_the_cli_imports_the_web_layer():
    outside = [p for p in PACKAGE.rglob("*.py") if "web" not in p.relative_to(PACKAGE).parts[:1]]
    outside = [p for p in outside if p.name != "cli.py"] + sorted((ROOT / "worker").glob("*.py"))
    assert importing(outside, "scimsvc.web") == {}


def test_services_and_the_store_never_speak_http():
    assert importing(modules("services", "store"), "aiohttp", "scimsvc.web") == {}


def test_the_store_never_imports_the_services():
    assert importing(modules("store"), "scimsvc.services") == {}


@pytest.mark.parametrize("folder", ["scim", "product"])
def test_pure_layers_do_no_io(folder):
    assert importing(modules(folder), "aiohttp", "asyncpg", "redis", "arq", "scimsvc.store") == {}


def names_imported_from(path: Path, prefix: str) -> set[str]:
    """`module:name` for every `from module import name` of `path` whose module starts with `prefix`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix):
            found.update(f"{node.module}:{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(prefix))
    return found


def test_the_web_layer_reaches_the_store_only_where_architecture_md_says():
    # ARCHITECTURE.md, import directions: the pool and the batchers, token lookups, an unreachable database.
    reached = {
        str(path.relative_to(PACKAGE)): names
        for path in modules("web")
        if (names := names_imported_from(path, "scimsvc.store"))
    }
    assert reached == {
        "web/app.py": {
            "scimsvc.store.db:create_pool",
            "scimsvc.store.new_users:new_user_inserts",
            "scimsvc.store.user_deletes:user_deletes",
            "scimsvc.store.user_reads:user_reads",
            "scimsvc.store.user_updates:user_updates",
        },
        "web/keys.py": {"scimsvc.store.batches:Batcher"},
        "web/middlewares.py": {"scimsvc.store.db:unavailable", "scimsvc.store.tenants:hash_token"},
        "web/console/access.py": {"scimsvc.store.db:unavailable"},
        "web/token_cache.py": {
            "scimsvc.store.tenants:AUTH_CHANNEL",
            "scimsvc.store.tenants:could_be_token",
            "scimsvc.store.tenants:hash_token",
            "scimsvc.store.tenants:record_token_uses",
            "scimsvc.store.tenants:token_lookups",
        },
    }
