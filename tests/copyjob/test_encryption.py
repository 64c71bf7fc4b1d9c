"""Encrypted copies end to end: the target and the stream never see a plaintext block."""

from __future__ import annotations

import json
import os
from datetime import timedelta

from engine.copy import transport as t
from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.container import FLAG_SEALED, FLAG_ZERO, Container
from engine.repository.repository import Repository

from .conftest import BS, T0, Source, ferry, write_job
from .enc_helpers import (
    PW,
    PW_ENV,
    StreamTap,
    enc_job,
    export_with,
    files_under,
    leaks,
    samples_of,
    set_pw,
)

JOBS = ["Daily", "Forever"]


def test_no_plaintext_sample_in_target_files_or_stream(tmp_path, monkeypatch):
    set_pw(monkeypatch)
    tap = StreamTap()
    monkeypatch.setattr(t, "pipe", tap.pipe)
    src = Source(tmp_path, methods=("forward", "forever-forward"), size=8 * BS + 1000)
    a, b = src.machines.values()
    b.data[:4 * BS] = a.data[:4 * BS]  # shared blocks: WAN cache and dedup candidates
    job = load_job(enc_job(tmp_path / "e.toml", "E", src.repo, JOBS, tmp_path / "dr", keep=2,
                           extra="[transport]\nwan_acceleration = true\n"))
    for day in range(3):  # a full, then increments; keep = 2 merges on the target
        src.backup(T0 + timedelta(days=day), mutate=3)
        res = run_job(job, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", res.to_json()
    states = [s for m in src.machines.values() for s in m.states.values()]
    samples = samples_of(states)
    assert len(samples) > 500
    for f in files_under(tmp_path / "dr"):
        assert leaks(f.read_bytes(), samples) == 0, f
    carried = tap.carried()
    assert len(carried) > 2 * len(a.data)  # the fulls really travelled through the tap
    assert leaks(carried, samples) == 0
    repo = Repository(tmp_path / "dr")
    for m in src.machines.values():
        meta = repo.load("E", m.name)
        assert [p.kind.value for p in meta.points] == ["full", "incremental"]
        for p in meta.points:
            assert p.encrypted
            got = export_with(tmp_path / "dr", "E", m.name, p.id, tmp_path / f"x{p.id}")
            assert got == m.states[p.source_point]
            with Container(tmp_path / "dr" / "E" / m.name / p.file, state=p.id) as c:
                flags = {e.flags for d in c.disks.values() for e in d.blocks.values()}
            assert flags and all(f & FLAG_SEALED or f == FLAG_ZERO for f in flags)
    # the control: the same data copied without encryption is found by the same search
    plain = load_job(write_job(tmp_path / "p.toml", "P", src.repo, JOBS, tmp_path / "plain",
                               extra='[storage]\ncompression = "none"\n'))
    assert run_job(plain, at=T0 + timedelta(days=3)).status == "Success"
    found = sum(leaks(f.read_bytes(), samples) for f in files_under(tmp_path / "plain" / "P"))
    assert found > 100


def test_chain_json_and_view_say_encrypted(tmp_path, monkeypatch):
    set_pw(monkeypatch)
    src = Source(tmp_path, methods=("forward",), size=4 * BS)
    job = enc_job(tmp_path / "e.toml", "E", src.repo, ["Daily"], tmp_path / "dr")
    src.backup(T0)
    assert run_job(load_job(job), at=T0 + timedelta(hours=1)).status == "Success"
    data = json.loads(ferry("chain", "--repo", tmp_path / "dr", "--json", check=True).stdout)
    assert [p["encrypted"] for p in data["chains"][0]["points"]] == [True]
    table = ferry("chain", "--repo", tmp_path / "dr", check=True).stdout
    assert "encrypted" in table and "yes" in table


def _encrypted_copy(tmp_path, monkeypatch, days: int = 2, keep: int = 7):
    set_pw(monkeypatch)
    src = Source(tmp_path, methods=("forward",), size=8 * BS + 1000)
    job = enc_job(tmp_path / "e.toml", "E", src.repo, ["Daily"], tmp_path / "dr", keep=keep)
    for day in range(days):
        src.backup(T0 + timedelta(days=day))
        res = run_job(load_job(job), at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", res.to_json()
    return src, job, next(iter(src.machines.values()))


def test_wrong_or_missing_password_exit_2_and_nothing_written(tmp_path, monkeypatch):
    src, job, m = _encrypted_copy(tmp_path, monkeypatch)
    repo = tmp_path / "dr"
    base = ["export", "--repo", repo, "--job", "E", "--machine", m.name]
    monkeypatch.setenv("FERRY_PASSWORD", "not the password")
    for extra in ([], ["--password-env", "NO_SUCH_VARIABLE_SET"]):
        out = tmp_path / f"out{len(extra)}"
        proc = ferry(*base, "--out", out, *extra)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "password" in proc.stderr and "Traceback" not in proc.stderr
        assert not out.exists()
    loose = tmp_path / "pw.txt"
    loose.write_text(PW + "\n")
    os.chmod(loose, 0o644)
    proc = ferry(*base, "--out", tmp_path / "o3", "--password-file", loose)
    assert proc.returncode == 2 and "0600" in proc.stderr and not (tmp_path / "o3").exists()
    os.chmod(loose, 0o600)
    proc = ferry(*base, "--out", tmp_path / "o4", "--password-file", loose)
    assert proc.returncode == 0, proc.stderr
    last = Repository(repo).load("E", m.name).points[-1]
    assert (tmp_path / "o4" / "disk0.img").read_bytes() == m.states[last.source_point]
    for out_text in (proc.stdout, proc.stderr):
        assert PW not in out_text
    # a run with the wrong password fails the increment with one line, and is not retried
    monkeypatch.setenv(PW_ENV, "wrong")
    src.backup(T0 + timedelta(days=5))
    proc = ferry("run", job, "--json", "--at", (T0 + timedelta(days=5, hours=1)).isoformat())
    assert proc.returncode == 2
    task = json.loads(proc.stdout)["tasks"][0]
    assert task["status"] == "Failed" and "wrong password" in task["message"]
    assert task["attempts"] == 1
    assert len(Repository(repo).load("E", m.name).points) == 2


def test_key_change_rewraps_without_rewriting_data(tmp_path, monkeypatch):
    src, job, m = _encrypted_copy(tmp_path, monkeypatch)
    repo = tmp_path / "dr"
    folder = repo / "E" / m.name
    backups = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".fbk", ".fib")}
    new = "a brand new passphrase 77"
    monkeypatch.setenv("NEW_PW", new)
    proc = ferry("key", "change", job, "--new-password-env", "NEW_PW")
    assert proc.returncode == 0, proc.stderr
    assert "1 chain key(s) re-wrapped" in proc.stdout and new not in proc.stdout
    assert {p.name: p.read_bytes() for p in folder.iterdir()
            if p.suffix in (".fbk", ".fib")} == backups  # no data rewritten
    meta_text = (folder / f"{m.name}.fbm").read_text()
    assert new not in meta_text and PW not in meta_text
    last = Repository(repo).load("E", m.name).points[-1]
    assert export_with(repo, "E", m.name, "latest", tmp_path / "n", pw=new) == \
        m.states[last.source_point]
    monkeypatch.setenv("FERRY_PASSWORD", PW)  # the old password stops working
    proc = ferry("export", "--repo", repo, "--job", "E", "--machine", m.name, "--out",
                 tmp_path / "old")
    assert proc.returncode == 2 and "wrong password" in proc.stderr
    assert not (tmp_path / "old").exists()
    # again with the old password in the job: refused, nothing changed
    proc = ferry("key", "change", job, "--new-password-env", "NEW_PW")
    assert proc.returncode == 0 and "already had the new password" in proc.stdout
    monkeypatch.setenv(PW_ENV, "neither")
    proc = ferry("key", "change", job, "--new-password-env", "NEW_PW")
    assert proc.returncode == 0  # the new one opens everything: nothing to do
    monkeypatch.setenv("NEW_PW", "third")
    proc = ferry("key", "change", job, "--new-password-env", "NEW_PW")
    assert proc.returncode == 2 and "wrong password" in proc.stderr
    # the job, given the new password, goes on with increments in the same chain
    monkeypatch.setenv(PW_ENV, new)
    src.backup(T0 + timedelta(days=4))
    res = run_job(load_job(job), at=T0 + timedelta(days=4, hours=1))
    assert res.status == "Success" and res.tasks[0].kind == "incremental"
    assert export_with(repo, "E", m.name, "latest", tmp_path / "n2", pw=new) == \
        m.data


def test_flipped_ciphertext_byte_is_named_by_check(tmp_path, monkeypatch):
    src, job, m = _encrypted_copy(tmp_path, monkeypatch, days=1)
    repo = tmp_path / "dr"
    meta = Repository(repo).load("E", m.name)
    full = meta.points[0]
    path = repo / "E" / m.name / full.file
    with Container(path, state=full.id) as c:
        block, e = next((b, e) for b, e in sorted(c.disks["disk0.img"].blocks.items())
                        if e.flags != FLAG_ZERO)
    with open(path, "r+b") as f:
        f.seek(e.offset + e.stored // 2)
        byte = f.read(1)
        f.seek(e.offset + e.stored // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    monkeypatch.setenv("FERRY_PASSWORD", PW)
    proc = ferry("check", "--repo", repo, "--deep", "--json")
    assert proc.returncode == 2
    corrupt = json.loads(proc.stdout)["machines"][0]["corrupt"]
    assert [(c["disk"], c["block"]) for c in corrupt] == [("disk0.img", block)]
    assert f"block {block}" in proc.stderr and "authentication failed" in proc.stderr
    proc = ferry("export", "--repo", repo, "--job", "E", "--machine", m.name, "--out",
                 tmp_path / "o")
    assert proc.returncode == 2 and f"corrupt block {block}" in proc.stderr


def test_switching_encryption_starts_a_new_full_and_the_old_chain_ages_out(tmp_path,
                                                                           monkeypatch):
    set_pw(monkeypatch)
    src = Source(tmp_path, methods=("forward",), size=6 * BS)
    m = next(iter(src.machines.values()))
    path = write_job(tmp_path / "j.toml", "J", src.repo, ["Daily"], tmp_path / "dr", keep=2)
    plain_text = path.read_text()
    repo = Repository(tmp_path / "dr")

    def day(n: int) -> list[tuple[str, bool]]:
        src.backup(T0 + timedelta(days=n))
        res = run_job(load_job(path), at=T0 + timedelta(days=n, hours=1))
        assert res.status == "Success", res.to_json()
        meta = repo.load("J", m.name)
        for p in meta.points:
            got = export_with(tmp_path / "dr", "J", m.name, p.id, tmp_path / f"d{n}{p.id}")
            assert got == m.states[p.source_point]
        assert set(meta.keys) == {p.key for p in meta.points if p.key}  # old keys pruned
        return [(p.kind.value, p.encrypted) for p in meta.points]

    assert day(0) == [("full", False)]
    assert day(1) == [("full", False), ("incremental", False)]
    enc_job(path, "J", src.repo, ["Daily"], tmp_path / "dr", keep=2)
    assert day(2) == [("full", False), ("incremental", False), ("full", True)]
    assert day(3) == [("full", True), ("incremental", True)]  # the plain chain aged out
    assert day(4) == [("full", True), ("incremental", True)]  # merged, still encrypted
    path.write_text(plain_text)  # encryption off again: a new plaintext chain
    assert day(5) == [("full", True), ("incremental", True), ("full", False)]
    assert day(6) == [("full", False), ("incremental", False)]
    assert repo.load("J", m.name).keys == {}


def test_gfs_synthetic_full_and_compact_on_encrypted_chain(tmp_path, monkeypatch):
    """Target-side transforms move sealed blocks without the password (the target mover
    never has it) and the points still open and read exactly."""
    set_pw(monkeypatch)
    src = Source(tmp_path, methods=("forward",), size=6 * BS)
    m = next(iter(src.machines.values()))
    job = enc_job(tmp_path / "g.toml", "G", src.repo, ["Daily"], tmp_path / "dr", keep=2,
                  extra='[retention.gfs]\nweekly = { keep_weeks = 2, day = "sunday" }\n')
    start = T0 + timedelta(days=(6 - T0.weekday()) % 7 + 1)  # a monday
    for n in range(8):
        src.backup(start + timedelta(days=n))
        res = run_job(load_job(job), at=start + timedelta(days=n, hours=1))
        assert res.status == "Success", res.to_json()
    meta = Repository(tmp_path / "dr").load("G", m.name)
    flagged = [p for p in meta.points if "W" in p.gfs]
    assert flagged and all(p.kind.value == "full" and p.encrypted for p in flagged)
    for p in meta.points:
        assert export_with(tmp_path / "dr", "G", m.name, p.id, tmp_path / p.id) == \
            m.states[p.source_point]


def test_password_never_lands_in_files_logs_history_or_output(tmp_path, monkeypatch, caplog):
    import logging
    import sys

    src = Source(tmp_path, methods=("forward",), size=4 * BS)
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    pw_file = secret_dir / "pw"
    pw_file.write_text(PW + "\n")
    os.chmod(pw_file, 0o600)
    script = secret_dir / "get_pw.py"
    script.write_text(f"print(open({str(pw_file)!r}).read().strip())\n")
    file_job = write_job(tmp_path / "f.toml", "F", src.repo, ["Daily"], tmp_path / "dr",
                         extra=f'[storage]\nencryption = true\npassword_file = "{pw_file}"\n')
    cmd_job = write_job(tmp_path / "c.toml", "C", src.repo, ["Daily"], tmp_path / "dr",
                        extra=f'[storage]\nencryption = true\n'
                              f'password_command = "{sys.executable} {script}"\n')
    outputs = []
    for n in range(2):
        src.backup(T0 + timedelta(days=n))
        for job in (file_job, cmd_job):
            proc = ferry("run", job, "--json", "--at", (T0 + timedelta(days=n, hours=1)).isoformat())
            assert proc.returncode == 0, proc.stderr
            outputs += [proc.stdout, proc.stderr]
    caplog.set_level(logging.DEBUG)
    src.backup(T0 + timedelta(days=2))
    res = run_job(load_job(cmd_job), at=T0 + timedelta(days=2, hours=1))
    assert res.status == "Success" and res.tasks[0].kind == "incremental"
    outputs += [json.dumps(res.to_json()), caplog.text, repr(load_job(cmd_job))]
    for cmd in (["history", "--repo", tmp_path / "dr", "--json"],
                ["chain", "--repo", tmp_path / "dr", "--json"]):
        outputs.append(ferry(*cmd, check=True).stdout)
    os.chmod(pw_file, 0o644)  # refused: the error names the file, not its content
    proc = ferry("run", file_job, "--json", "--at", (T0 + timedelta(days=3)).isoformat())
    assert proc.returncode == 2 and "0600" in proc.stdout + proc.stderr
    outputs += [proc.stdout, proc.stderr]
    for text in outputs:
        assert PW not in text
    needle = PW.encode()
    checked = 0
    for f in files_under(tmp_path):
        if secret_dir not in f.parents:
            assert needle not in f.read_bytes(), f
            checked += 1
    assert checked > 10 and (tmp_path / "dr" / ".ferry" / "history.sqlite").exists()
