"""The real `ferry` CLI on an s3:// repository: chain, export, check, history, preview."""

from __future__ import annotations

import json
from datetime import timedelta

from copyjob.conftest import T0, Source, ferry

from engine.copy.runner import run_job

from .test_s3_copy import s3_job

JOB = "S3 copy"


def test_cli_commands_take_s3_repositories(tmp_path, lock_bucket, monkeypatch):
    src = Source(tmp_path, methods=("forward",))
    m = src.machines["vm-forward"]
    url = f"s3://{lock_bucket}/dr"
    extra = "\n[storage]\nimmutable_days = 2\n"
    for day in range(2):
        src.backup(T0 + timedelta(days=day))
        spec = s3_job(tmp_path, src, url, keep=2, mode="immediate", extra=extra)
        assert run_job(spec, at=T0 + timedelta(days=day, hours=1)).status == "Success"
    chain = json.loads(ferry("chain", "--repo", url, "--json", check=True).stdout)
    [ch] = chain["chains"]
    assert (ch["job"], ch["machine"], len(ch["points"])) == (JOB, "vm-forward", 2)
    out = tmp_path / "out"
    ferry("export", "--repo", url, "--job", JOB, "--machine", "vm-forward", "--out", out,
          check=True)
    assert (out / "disk0.img").read_bytes() == list(m.states.values())[-1]
    check = ferry("check", "--repo", url, "--all", "--json", check=True)
    assert json.loads(check.stdout)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    hist = json.loads(ferry("history", "--repo", url, "--json", check=True).stdout)
    assert len(hist["sessions"]) == 2 and {s["job"] for s in hist["sessions"]} == {JOB}
    assert list(scratch.iterdir()) == []  # the history's local copy went with the command
    monkeypatch.delenv("TMPDIR")
    prev = ferry("preview", spec.path, "--days", "5", "--json", check=True)
    assert "immutable" in prev.stdout  # the note on immutable_days = 2 (and the reasons)
    bad = ferry("chain", "--repo", "s3://Bad_Bucket/x")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
