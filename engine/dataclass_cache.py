"""Dataclasses' generated methods compiled once and cached beside engine's bytecode.

`@dataclass` writes the source text of each class's `__init__`, `__repr__`, `__eq__`,
`__setattr__`... and compiles it with `exec()` every time its module is imported:
~0.6 ms per class under CPython 3.11, a quarter of a `ferry run` with nothing to copy
(~70 classes; issue 15). The text depends only on the class's fields and options, so
its compiled code is kept by that text (and the compiler flags `exec` would have used):
a hit runs exactly the code that compiling the text makes.

The cache is one marshal file where Python keeps engine's `.pyc` files (`__pycache__`,
or under `PYTHONPYCACHEPREFIX`), named by the interpreter's cache tag and checked
against its exact version; it is written only when Python would write bytecode
(not under `PYTHONDONTWRITEBYTECODE`) and read with the trust Python gives those
files. Anything unreadable is ignored: the cache only saves time.
"""

from __future__ import annotations
import __future__

import atexit
import builtins
import importlib
import marshal
import os
import sys
import threading
from types import CodeType, ModuleType
from typing import Any

MAX_ENTRIES = 4096  # a bound for classes made at run time (make_dataclass with varying names)
_FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag

_lock = threading.Lock()
_codes: dict[tuple[str, int], CodeType] | None = None  # loaded on the first class
_added = 0  # entries compiled by this process (written at exit)
misses = 0  # texts this process had to compile (a test reads it)


class _Deferred(ModuleType):
    """Stands in for a stdlib module until something reads one of its attributes: then
    the real module is imported and its namespace copied in, so the holders of the
    stand-in see the real thing from then on."""

    def __getattr__(self, name: str) -> Any:
        with _lock:
            real = sys.modules.get(self.__name__)
            if real is None or real is self:
                sys.modules.pop(self.__name__, None)
                real = importlib.import_module(self.__name__)
            self.__dict__.update(real.__dict__)
        return getattr(real, name)


def install() -> None:
    """Route the dataclasses module's `exec` through the cache. The module calls `exec`
    by its global name, so a module attribute shadows the builtin for it alone; a
    version that compiles some other way is simply not sped up.

    dataclasses imports inspect (with ast, dis and tokenize: ~4.5 ms of every start, issue
    15) only to write a docstring for a class that has none: until some code reads it,
    `inspect` is a `_Deferred` stand-in (the run's classes all have docstrings)."""
    if "dataclasses" not in sys.modules and "inspect" not in sys.modules:
        sys.modules["inspect"] = _Deferred("inspect")
    import dataclasses

    if sys.implementation.cache_tag is None or getattr(dataclasses, "exec", None) is _exec:
        return
    dataclasses.exec = _exec  # type: ignore[attr-defined]


def cache_path() -> str:
    """Where this interpreter keeps the cache (the folder of engine's own bytecode)."""
    here = os.path.dirname(os.path.abspath(__file__))
    name = f"dataclasses.{sys.implementation.cache_tag}.marshal"
    if sys.pycache_prefix:  # as importlib.util.cache_from_source places .pyc files
        return os.path.join(sys.pycache_prefix, here.lstrip(os.sep), name)
    return os.path.join(here, "__pycache__", name)


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:  # noqa: A002
    if type(source) is not str:
        builtins.exec(source, globals, locals)
        return
    # exec() compiles a string with the future flags of its caller's code: the same here
    flags = sys._getframe(1).f_code.co_flags & _FUTURE_FLAGS
    builtins.exec(_code(source, flags), globals, locals)


def _code(source: str, flags: int) -> CodeType:
    global _codes, _added, misses
    with _lock:
        if _codes is None:
            _codes = _load()
        hit = _codes.get((source, flags))
        if hit is not None:
            return hit
        misses += 1
        code: CodeType = compile(source, "<string>", "exec", flags=flags, dont_inherit=True)
        if len(_codes) < MAX_ENTRIES:
            _codes[(source, flags)] = code
            _added += 1
            if _added == 1 and not sys.dont_write_bytecode:
                atexit.register(_save)
        return code


def _load() -> dict[tuple[str, int], CodeType]:
    try:
        with open(cache_path(), "rb") as f:  # one read: marshal.load(f) reads piecemeal
            version, codes = marshal.loads(f.read())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if version != sys.version or not isinstance(codes, dict) or not all(
            isinstance(k, tuple) and isinstance(v, CodeType) for k, v in codes.items()):
        return {}
    return codes


def _save() -> None:
    """The cache with this process's new entries (merged with what another process may
    have written meanwhile), replaced in one rename."""
    path = cache_path()
    with _lock:
        codes = {**_load(), **(_codes or {})}
    if len(codes) > MAX_ENTRIES:
        codes = dict(list(codes.items())[-MAX_ENTRIES:])
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            marshal.dump((sys.version, codes), f)
        os.replace(tmp, path)
    except OSError:  # a read-only install: classes are compiled per run, as without it
        try:
            os.unlink(tmp)
        except OSError:
            pass
