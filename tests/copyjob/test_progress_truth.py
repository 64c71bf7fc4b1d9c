"""Progress tells the truth: continuous per machine, ETA inputs, per-disk shares, and the job's
rate limit is one bucket shared by its tasks (real run, real repositories)."""

from __future__ import annotations

from pathlib import Path

from engine import events as ev
from engine.copy.runner import run_job
from engine.jobs.load import load_job

from .conftest import BS, T0, Source, write_job

RATE = 1536 << 10  # 1.5 MiB/s for the whole job


def test_rate_limit_is_per_job_and_progress_is_continuous(tmp_path: Path) -> None:
    source = Source(tmp_path, size=6 * BS + 1000)
    source.backup(T0)
    job = write_job(tmp_path / "job.toml", "DR copy", source.repo,
                    ["Daily", "Forever", "Reverse"], tmp_path / "dr",
                    extra=f'[transport]\nparallel_tasks = 4\nrate_limit = "{RATE}"\n')
    seen: list[ev.Event] = []
    res = run_job(load_job(job), sink=seen.append, live=False)
    assert res.status == "Success", res.to_json()
    sent = sum(t.stats.transferred for t in res.tasks)
    assert sent > 3 * 3 * BS  # incompressible data crossed the stream (2 blocks are zero)
    # three tasks at once share one bucket: the job moves at most its limit (plus a
    # 0.1 s burst); with a bucket per task it would move close to three times that
    assert sent / res.duration_s <= RATE * 1.25, (sent, res.duration_s)
    assert all(t.bottleneck == "Throttled" for t in res.tasks), [t.bottleneck for t in res.tasks]
    for machine in (t.machine for t in res.tasks):
        progress = [e for e in seen if isinstance(e, ev.TaskProgress) and e.machine == machine]
        processed = [e.stats.processed for e in progress]
        assert processed == sorted(processed)  # never backwards
        total = progress[-1].total
        partial = [p for p in processed if 0 < p < total]
        assert len(partial) >= 2, processed  # it advances during the stream, not at the end
        assert all(e.to_read > 0 for e in progress)
        assert progress[-1].to_read == progress[-1].stats.read  # ETA reaches zero exactly
        assert set(progress[-1].disks) == {"disk0.img"}
        shares = [e.disks["disk0.img"] for e in progress if e.disks]
        assert shares == sorted(shares) and 0 < shares[0] < 1
        assert "Throttled" in progress[-1].bottleneck
