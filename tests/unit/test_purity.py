"""The core stays pure: importing every module of eventcore pulls in no I/O library, and the
core holds no test machinery and no state of its own."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

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


# The core holds rules, not state: nothing it binds at import time (in a module or a class body)
# can change afterwards, so two platforms in one process, or two tests in a row, never share
# anything but constants. A binding's value is immutable when it is:
# - a literal, an f-string, or an arithmetic, boolean, comparison or conditional expression of
#   immutable values; a tuple of immutable values; a lambda;
# - a reference to something defined elsewhere (a name, an attribute: a class, an enum member,
#   an imported constant; its own module answers for it), or a subscription of one (a generic
#   type such as ``Callable[[], None]``);
# - a call of a constructor of immutable values (``IMMUTABLE_CALLS``), or of a freezing wrapper
#   (``FREEZING_CALLS``: frozenset, tuple, MappingProxyType) around displays or comprehensions
#   of immutable values, whose mutable copy nobody else holds.
# ``Final`` is no exemption (``X: Final = []`` is still a list). ``__all__`` alone may be a list,
# of string literals, as tools expect. Refused besides: statements that run at import time
# (calls, loops, augmented assignments), ``global`` in a function, and module-level functions
# memoised with functools (a cache is state).
IMMUTABLE_CALLS = frozenset(
    {
        "bool",
        "bytes",
        "date",
        "datetime",
        "float",
        "int",
        "len",
        "str",
        "time",
        "timedelta",
        "timezone",
        "version",
        "NewType",
        "ParamSpec",
        "TypeVar",
        "re.compile",
        "Raw",
        "msgspec.Raw",
        "msgspec.json.Decoder",
        "msgspec.json.Encoder",
        "msgspec.msgpack.Decoder",
        "msgspec.msgpack.Encoder",
        # Field specifiers of Structs and dataclasses: each instance gets its own value.
        "field",
        "msgspec.field",
        "dataclasses.field",
    }
)
FREEZING_CALLS = frozenset({"frozenset", "tuple", "MappingProxyType", "types.MappingProxyType"})
MEMOISERS = frozenset({"cache", "lru_cache", "functools.cache", "functools.lru_cache"})


def _immutable(node: ast.expr) -> bool:
    match node:
        case ast.Constant() | ast.Name() | ast.Attribute() | ast.Lambda() | ast.JoinedStr():
            return True
        case ast.Subscript(value=ast.Name() | ast.Attribute()):
            return True
        case ast.Tuple(elts=elements) | ast.BoolOp(values=elements):
            return all(_immutable(element) for element in elements)
        case ast.UnaryOp(operand=operand):
            return _immutable(operand)
        case ast.BinOp(left=left, right=right):
            return _immutable(left) and _immutable(right)
        case ast.Compare(left=left, comparators=comparators):
            return all(_immutable(part) for part in (left, *comparators))
        case ast.IfExp(body=body, orelse=orelse):
            return _immutable(body) and _immutable(orelse)
        case ast.Call(func=func, args=args, keywords=keywords):
            called = ast.unparse(func)
            if called in FREEZING_CALLS:
                return all(_frozen(arg) for arg in (*args, *(k.value for k in keywords)))
            return called in IMMUTABLE_CALLS
    return False


def _frozen(node: ast.expr) -> bool:
    """What a freezing wrapper may be given: a display or comprehension of immutable values."""
    match node:
        case ast.List(elts=elements) | ast.Set(elts=elements):
            return all(_immutable(element) for element in elements)
        case ast.Dict(keys=keys, values=values):
            return all(k is not None and _immutable(k) for k in keys) and all(
                _immutable(v) for v in values
            )
        case ast.ListComp(elt=element) | ast.SetComp(elt=element) | ast.GeneratorExp(elt=element):
            return _immutable(element)
        case ast.DictComp(key=key, value=value):
            return _immutable(key) and _immutable(value)
    return _immutable(node)


def _is_all_of_names(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Assign)
        and [ast.unparse(target) for target in node.targets] == ["__all__"]
        and isinstance(node.value, ast.List | ast.Tuple)
        and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts)
    )


def _state_in(body: list[ast.stmt], where: str = "") -> list[str]:
    """Each statement of a module or class body that binds or changes state, as `line: code`."""
    found: list[str] = []

    def refuse(node: ast.stmt) -> None:
        found.append(f"{where}{node.lineno}: {ast.unparse(node).splitlines()[0][:80]}")

    for node in body:
        match node:
            case ast.Assign(value=value) | ast.AnnAssign(value=value) if value is not None:
                if not (_immutable(value) or (not where and _is_all_of_names(node))):
                    refuse(node)
            case ast.AnnAssign() | ast.Import() | ast.ImportFrom() | ast.Pass():
                pass
            case ast.Expr(value=ast.Constant(value=str())):
                pass  # a docstring
            case ast.If() | ast.Try() | ast.TryStar():
                for block in ("body", "orelse", "finalbody"):
                    found += _state_in(getattr(node, block, []), where)
                for handler in getattr(node, "handlers", []):
                    found += _state_in(handler.body, where)
            case ast.FunctionDef() | ast.AsyncFunctionDef():
                if any(
                    ast.unparse(d.func if isinstance(d, ast.Call) else d) in MEMOISERS
                    for d in node.decorator_list
                ):
                    refuse(node)
                found += [
                    f"{where}{inner.lineno}: {ast.unparse(inner)} (in {node.name})"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Global)
                ]
            case ast.ClassDef():
                found += _state_in(node.body, f"{where}{node.name}.")
            case _:
                refuse(node)
    return found


def _module_state(source: str, path: str = "<source>") -> list[str]:
    return _state_in(ast.parse(source, path).body)


CORE_MODULES = sorted(str(path.relative_to(CORE)) for path in CORE.rglob("*.py"))


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_holds_no_mutable_state(module: str) -> None:
    """Everything a core module binds at import time, in the module or a class, is immutable,
    and nothing in it changes module state later (no `global`, no memoised function)."""
    path = CORE / module
    assert _module_state(path.read_text(), str(path)) == []


def test_the_core_holds_no_test_machinery() -> None:
    """No core module is, or mentions, a failpoint: crash tests wrap the worker's ports at the
    composition root (eventcore.entrypoints.failpoints) instead."""
    mentions = [
        str(path.relative_to(CORE))
        for path in CORE.rglob("*.py")
        if "failpoint" in path.read_text().lower() or "failpoint" in path.name
    ]
    assert mentions == []


# The failpoint registry the core once held, as it was: a hook table filled in by tests.
OLD_FAILPOINTS = '''
"""Named points in the commit path where a test can make a process fail on purpose."""
from collections.abc import Callable
AFTER_INSERT = "after_insert"
NAMES = frozenset({AFTER_INSERT})
Hook = Callable[[], None]
_hooks: dict[str, Hook] = {}
def install(name: str, hook: Hook) -> None:
    _hooks[name] = hook
def clear() -> None:
    _hooks.clear()
'''


@pytest.mark.parametrize(
    "source",
    [
        OLD_FAILPOINTS,
        "REGISTRY = []",
        "SEEN: Final = set()",
        "LIMITS: Final[dict[str, int]] = {'a': 1}",
        "TABLE = dict(a=1)",
        "PAIRS = (1, [2])",
        "PROXY = MappingProxyType({'a': []})",
        "import x\nx.register(1)",
        "for name in 'ab':\n    pass",
        "COUNT = 0\nCOUNT += 1",
        "def f():\n    global COUNT\n    COUNT = 1",
        "import functools\n@functools.cache\ndef f() -> int:\n    return 1",
        "class Registry:\n    entries: dict[str, int] = {}",
        "try:\n    CACHE = {}\nexcept ImportError:\n    pass",
    ],
)
def test_the_rule_refuses_state(source: str) -> None:
    """Module-level containers, mutations at import time, `global` and memoisers are all found."""
    assert _module_state(source) != []


def test_the_rule_accepts_constants() -> None:
    """Literals, tuples, frozen wrappers, Final constants, compiled codecs, type aliases, enums
    and Structs are not state."""
    source = '''
"""A module."""
import re
from types import MappingProxyType
from typing import Final
import msgspec
__all__ = ["A"]
A: Final = 32 * 1024
B = ("x", 1.5, None, -1)
C = frozenset({"a", "b"})
D = MappingProxyType({"a": (1, 2), "b": frozenset()})
E = re.compile("^a$")
F = msgspec.json.Decoder(list[int])
G = Callable[[], None]
H = int | None
J = f"{A}s"
class Role(enum.StrEnum):
    OWNER = "owner"
class Point(msgspec.Struct, frozen=True):
    x: int = 0
    tags: list[str] = msgspec.field(default_factory=list)
try:
    __version__ = version("eventcore")
except PackageNotFoundError:
    __version__ = "0.0.0"
'''
    assert _module_state(source) == []
