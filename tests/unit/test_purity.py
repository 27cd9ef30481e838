"""The core stays pure: importing every module of eventcore pulls in no I/O library."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "eventcore"

# Drivers, servers, frameworks and network clients: none of them may reach the core.
FORBIDDEN = frozenset(
    {
        "psycopg",
        "psycopg_pool",
        "redis",
        "aiormq",
        "pamqp",
        "litestar",
        "dependency_injector",
        "sqlite3",
        "_sqlite3",
        "httpx",
        "requests",
        "asyncpg",
        "aio_pika",
        "uvicorn",
    }
)
# The standard library itself imports socket (asyncio does), so only a direct import is banned;
# and dependencies point inwards, so the core never imports its adapters or entrypoints.
FORBIDDEN_IN_SOURCE = FORBIDDEN | {"socket", "ssl", "adapters", "entrypoints"}

_PROBE = """
import importlib, json, pkgutil, sys
import eventcore
names = [m.name for m in pkgutil.walk_packages(eventcore.__path__, "eventcore.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"file": eventcore.__file__, "walked": names, "modules": sorted(sys.modules)}))
"""


def test_importing_every_core_module_loads_no_io_library() -> None:
    """Importing eventcore and all its submodules in a fresh interpreter loads no driver or client."""
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        check=True,
        cwd=CORE.parents[1],
        timeout=60,
    )
    probe = json.loads(completed.stdout)
    assert Path(probe["file"]).resolve().is_relative_to(CORE)
    expected = {
        ".".join(("eventcore", *path.relative_to(CORE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for path in CORE.rglob("*.py")
    } - {"eventcore"}
    assert set(probe["walked"]) == expected
    loaded = {name.partition(".")[0] for name in probe["modules"]}
    assert loaded & FORBIDDEN == set()


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif (
            # importlib.import_module("x") / __import__("x") would dodge the import statements.
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None))
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value)
    return {name.partition(".")[0] for name in names}


def test_core_source_imports_no_io_library() -> None:
    """No module under src/eventcore names an I/O library, adapters or entrypoints in an import."""
    sources = sorted(CORE.rglob("*.py"))
    assert len(sources) > 5
    offenders = {
        str(path.relative_to(CORE)): sorted(found)
        for path in sources
        if (found := _imported_names(ast.parse(path.read_text(), str(path))) & FORBIDDEN_IN_SOURCE)
    }
    assert offenders == {}
