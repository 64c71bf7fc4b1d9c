"""Dataclasses made through the code cache behave as compiled ones, and a warm cache
compiles nothing (engine.dataclass_cache; issue 15: the start-up of a `ferry run`).

Each case runs in a fresh interpreter: the cache is read once per process, and written
at its exit only where Python writes bytecode (the tests' PYTHONDONTWRITEBYTECODE is
lifted for them, PYTHONPYCACHEPREFIX points into tmp_path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PROBE = r"""
import dataclasses, inspect, json, sys
from dataclasses import dataclass, field
import engine.dataclass_cache as cache

@dataclass(frozen=True, order=True)
class Point:
    '''A frozen, ordered class with a default and a factory.'''
    x: int
    y: int = 2
    tags: list = field(default_factory=list, compare=False)

@dataclass
class Plain:
    name: str
    n: int = 0

p, q = Point(1), Point(1, 3, ["a"])
try:
    p.x = 5
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
plain = Plain("a")
plain.n += 1
out = {"repr": [repr(p), repr(q), repr(plain)], "eq": p == Point(1, 2, ["b"]), "lt": p < q,
       "hash": hash(p) == hash(Point(1)), "frozen": frozen, "n": plain.n,
       "sig": [str(inspect.signature(Point)), str(inspect.signature(Plain))],
       "fresh_list": Point(0).tags is not Point(0).tags, "misses": cache.misses,
       "hooked": dataclasses.exec is cache._exec, "path": cache.cache_path()}
print(json.dumps(out))
"""


def _probe(tmp_path: Path, write: bool = True) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pyc")
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def _same_behaviour(a: dict, b: dict) -> None:
    for key in ("repr", "eq", "lt", "hash", "frozen", "n", "sig", "fresh_list"):
        assert a[key] == b[key], key


def test_a_warm_cache_compiles_nothing_and_the_classes_behave_the_same(tmp_path):
    cold = _probe(tmp_path)
    assert cold["hooked"] and cold["misses"] > 0
    assert Path(cold["path"]).is_file()  # written at the cold process's exit
    assert cold["repr"][0] == "Point(x=1, y=2, tags=[])" and cold["frozen"] and cold["eq"]
    assert cold["sig"][0].startswith("(x: int, y: int = 2")
    warm = _probe(tmp_path)
    assert warm["misses"] == 0
    _same_behaviour(cold, warm)


def test_nothing_is_written_where_python_writes_no_bytecode(tmp_path):
    out = _probe(tmp_path, write=False)
    assert out["misses"] > 0 and not Path(out["path"]).exists()


def test_a_damaged_or_foreign_cache_is_ignored_and_replaced(tmp_path):
    path = Path(_probe(tmp_path)["path"])
    for junk in (b"\x00garbage", path.read_bytes()[:100],
                 __import__("marshal").dumps(("another Python", {}))):
        path.write_bytes(junk)
        out = _probe(tmp_path)
        assert out["misses"] > 0 and out["repr"][0] == "Point(x=1, y=2, tags=[])"
        assert _probe(tmp_path)["misses"] == 0  # rewritten by the run before
