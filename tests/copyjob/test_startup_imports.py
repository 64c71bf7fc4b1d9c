"""A local `ferry run --json` loads only what a folder-to-folder copy needs.

The start-up cost of a run with nothing to copy is mostly imports (issue 15: <= 0.1 s):
object storage (boto3), tables and progress bars (rich), the console (textual) and
encryption (cryptography) are imported only by the jobs and commands that use them,
and a few stdlib modules not at all (HEAVY says why).
A timing test would pass or fail with the machine's load; this one fails only when
somebody imports one of them again on the way.

The dataclasses a run makes are compiled once and cached beside the bytecode
(engine.dataclass_cache): with bytecode written, as an installed Ferry has it, a
second run compiles none of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, T0, write_job

HEAVY = ("boto3", "botocore", "rich", "textual", "cryptography", "engine.objstore.repo",
         "engine.preview_cli", "engine.simulate",
         # stdlib modules a run does without (each was 0.5-2 ms of its start-up): the log
         # file rotates itself (no logging.handlers, which imports pickle and socket),
         # ids come from os.urandom, and no shutil (argparse's terminal width, the live
         # folder's removal), which would import bz2 and lzma
         "logging.handlers", "pickle", "uuid", "shutil", "bz2", "lzma",
         # imported by dataclasses only to write a docstring for a class without one
         # (engine.dataclass_cache defers it): a run's dataclasses all have docstrings
         "inspect", "ast", "dis")

_PROBE = """
import json, sys
from console.entry import main
code = main(sys.argv[1:])
loaded = [m for m, mod in sys.modules.items() if type(mod).__name__ != "_Deferred"]  # a stand-in
heavy = sorted({m if m in HEAVY else m.split(".")[0] for m in loaded
                if m.split(".")[0] in HEAVY or m in HEAVY})
import engine.dataclass_cache
print(json.dumps({"code": code, "heavy": heavy, "compiled": engine.dataclass_cache.misses}),
      file=sys.stderr)
"""


def _run(*args: str, pycache: Path | None = None) -> dict:
    """`ferry ARGS` through the console script's entry point; the heavy modules it loaded
    and the dataclass methods it compiled. With `pycache`, bytecode (and the dataclass
    cache) is written there, as for an installed Ferry."""
    probe = f"HEAVY = {HEAVY!r}\n{_PROBE}"
    env = dict(os.environ)
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    proc = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)
    out = json.loads(proc.stderr.strip().splitlines()[-1])
    compiled = out.pop("compiled")
    return out if pycache is None else {**out, "compiled": compiled}


def test_a_local_run_imports_no_object_storage_tables_console_or_crypto(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, ["Daily"], tmp_path / "dr")
    copy = _run("run", str(job), "--json", "--at", "2026-11-02T23:00")
    assert copy == {"code": 0, "heavy": []}
    idle = _run("run", str(job), "--json", "--at", "2026-11-03T23:00")  # nothing new
    assert idle == {"code": 0, "heavy": []}


def test_a_second_run_compiles_no_dataclass(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, ["Daily"], tmp_path / "dr")
    first = _run("run", str(job), "--json", "--at", "2026-11-02T23:00", pycache=tmp_path / "pyc")
    assert first["code"] == 0 and first["compiled"] > 50  # every class of the run path
    idle = _run("run", str(job), "--json", "--at", "2026-11-03T23:00", pycache=tmp_path / "pyc")
    assert idle == {"code": 0, "heavy": [], "compiled": 0}


def test_the_probe_sees_an_import_when_there_is_one(tmp_path, source):
    """The same probe on a command that prints a rich table does list rich."""
    source.backup(T0)
    out = _run("chain", "--repo", str(source.repo))
    assert out["code"] == 0 and "rich" in out["heavy"]


def test_the_deferred_inspect_is_the_real_module_on_first_use(tmp_path):
    """Code that reads `inspect` after the engine deferred it gets the real module (and
    then the probe above would list it)."""
    probe = ("import engine, sys, inspect\n"
             "before = type(sys.modules['inspect']).__name__\n"
             "sig = str(inspect.signature(lambda a, b=2: None))\n"
             "print(before, type(sys.modules['inspect']).__name__, sig, 'ast' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.split() == ["_Deferred", "module", "(a,", "b=2)", "True"], out.stderr
