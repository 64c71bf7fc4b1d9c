"""The S3 part of bench/copy_bench.py: a copy to a real Ceph RADOS gateway next to its
own PUT ceiling.

With Ceph installed (`copy_bench.py --s3-size`, default 512MiB; 0 skips it): a throw-away
single-node cluster (tests/s3/cephlab.py) is started, the gateway's own PUT ceiling is
measured (4 threads, 4 MiB objects, through the same boto3 client Ferry uses) before and
after, and a full copy of a VM-like image to `s3://bench/...` is timed next to it (bytes
PUT per second vs the ceiling, and logical MB/s); then a 2 %-changed increment, with the
S3 requests each run made (`requests` in `ferry run --json`) next to the blocks that
changed. The CPU seconds of each Ceph daemon are read from /proc around each part.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchjob import ROOT, T0, backup, ferry, job_file, med
from ceilings import MB, run_measured

from engine.units import fmt_size
from sample_repos import vmdata

S3_ROUNDS = 3


def daemon_cpu(info: dict) -> dict[str, float]:
    """CPU seconds (user + system) so far of each Ceph daemon, by its name."""
    out = {}
    for pid in info.get("PIDS", "").split():
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_since(info: dict, before: dict[str, float]) -> dict[str, float]:
    now = daemon_cpu(info)
    return {k: now[k] - before[k] for k in before if k in now}


def s3_put_ceiling(loc, total: int = 128 << 20, obj: int = 4 << 20, threads: int = 4) -> float:
    """MB/s of 4 MiB PUTs from 4 threads to the gateway (median of S3_ROUNDS rounds)."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.objstore.store import Bucket

    b = Bucket(loc, pool=threads)
    body = os.urandom(obj)
    rates = []
    for _round in range(S3_ROUNDS):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(lambda i: b.put(f"ceiling/{i}", body), range(total // obj)))
        rates.append(total / (time.perf_counter() - t0) / MB)
    return med(rates)


def s3_bench(size: int, work: Path) -> dict:
    """Full and incremental copy to a real Ceph RADOS gateway next to its PUT ceiling."""
    sys.path.insert(0, str(ROOT / "tests" / "s3"))
    import cephlab

    from engine.objstore.location import parse_s3_url

    if cephlab.missing_binaries():
        return {"skipped": "ceph not installed"}
    work.mkdir(parents=True, exist_ok=True)
    cephlab.become_subreaper()
    os.environ.setdefault("MEMSTORE_BYTES", str(max(3 << 30, 3 * size)))
    info = cephlab.up()
    saved = dict(os.environ)
    try:
        os.environ.update(AWS_ENDPOINT_URL=info["S3_ENDPOINT"],
                          AWS_ACCESS_KEY_ID=info["S3_ACCESS_KEY"],
                          AWS_SECRET_ACCESS_KEY=info["S3_SECRET_KEY"],
                          FERRY_STATE_DIR=str(work / "state"))
        import boto3

        boto3.client("s3", endpoint_url=info["S3_ENDPOINT"], region_name="us-east-1",
                     aws_access_key_id=info["S3_ACCESS_KEY"],
                     aws_secret_access_key=info["S3_SECRET_KEY"]).create_bucket(Bucket="bench")
        loc = parse_s3_url("s3://bench")
        disk = work / "disk.img"
        vmdata.write_disk(disk, size, "bench-s3", "bench-os")
        src = work / "src"
        backup(src, disk, T0)
        c0, p0 = daemon_cpu(info), time.process_time()
        before = s3_put_ceiling(loc)
        ceil_cpu = {**cpu_since(info, c0), "client": time.process_time() - p0}
        job = job_file(work / "s3.toml", "S3 bench", src, "s3://bench/dr", "auto")
        c0 = daemon_cpu(info)
        full = run_measured(ferry("run", job, "--json", "--at",
                                  (T0 + timedelta(hours=1)).isoformat()))
        full_cpu = {**cpu_since(info, c0), "ferry": full.cpu_s}
        if full.returncode:
            raise SystemExit(full.stderr.decode())
        after = s3_put_ceiling(loc)
        fj = json.loads(full.stdout)
        puts = max(1, fj.get("requests", {}).get("PUT", 1))
        own = max(64 << 10, fj["tasks"][0]["written"] // puts)
        same_size = s3_put_ceiling(loc, total=own * 128, obj=own, threads=16)
        mut = vmdata.mutate_disk(disk, 1, "bench-s3", 2.0)
        at = T0 + timedelta(days=1)
        backup(src, disk, at)
        inc = run_measured(ferry("run", job, "--json", "--at",
                                 (at + timedelta(hours=1)).isoformat()))
        ij = json.loads(inc.stdout)
        idle = run_measured(ferry("run", job, "--json", "--at",
                                  (at + timedelta(hours=2)).isoformat()))
        return {"ceil_cpu": ceil_cpu, "full_cpu": full_cpu, "idle_s": idle.wall_s,
                "own_size": own, "same_size": same_size, "size": size,
                "ceiling": [before, after], "full_s": full.wall_s,
                "full_rss": full.rss_mib, "full_written": fj["tasks"][0]["written"],
                "full_requests": fj.get("requests", {}), "inc_s": inc.wall_s,
                "full_task_s": fj["tasks"][0]["duration_s"], "full_load": fj["tasks"][0]["load"],
                "full_bottleneck": fj["tasks"][0]["bottleneck"],
                "inc_rss": inc.rss_mib, "inc_requests": ij.get("requests", {}),
                "inc_written": ij["tasks"][0]["written"],
                "changed_blocks": vmdata.changed_blocks(mut, 1 << 20),
                "blocks": -(-size // (1 << 20)), "status": [fj["status"], ij["status"]]}
    finally:
        os.environ.clear()
        os.environ.update(saved)
        cephlab.down(info)


def report_s3(r: dict) -> None:
    if "skipped" in r:
        print(f"\ncopy to S3: skipped ({r['skipped']})")
        return
    ceil = med(r["ceiling"])
    put_rate = r["full_written"] / r["full_s"] / MB
    fr, ir = r["full_requests"], r["inc_requests"]
    print(f"\ncopy of {fmt_size(r['size'])} VM-like data to a Ceph RADOS gateway (memstore OSD, "
          f"127.0.0.1), runs {r['status']}:")
    print(f"  gateway PUT ceiling, 4 threads x 4 MiB objects: {ceil:,.0f} MB/s "
          f"(before {r['ceiling'][0]:,.0f}, after {r['ceiling'][1]:,.0f})")
    net = max(r["full_s"] - r["idle_s"], 1e-9)
    print(f"  full copy: {r['full_s']:.2f} s wall, {fmt_size(r['full_written'])} PUT = "
          f"{put_rate:,.0f} MB/s = {put_rate / ceil:.0%} of the ceiling; net of the start-up "
          f"floor ({r['idle_s']:.2f} s, a run with nothing to copy): "
          f"{r['full_written'] / net / MB:,.0f} MB/s = {r['full_written'] / net / MB / ceil:.0%} "
          f"(goal >= 80 %); logical {r['size'] / net / MB:,.0f} MB/s; "
          f"peak RSS {r['full_rss']:.0f} MiB")
    task_rate = r["full_written"] / r["full_task_s"] / MB
    print(f"    the copy task itself: {r['full_task_s']:.2f} s = {task_rate:,.0f} MB/s PUT = "
          f"{task_rate / ceil:.0%} of the 4 MiB ceiling; bottleneck {r['full_bottleneck']}, "
          f"load {r['full_load']}")
    print(f"    Ferry's objects are the stored blocks, {fmt_size(r['own_size'])} on average: the "
          f"gateway's own PUT rate at that size (16 threads) is {r['same_size']:,.0f} MB/s, "
          f"the task reaches {task_rate / r['same_size']:.0%} of it")
    print(f"    requests {sum(fr.values())} {fr} for {r['blocks']} blocks")
    gib = r["full_written"] / (1 << 30)
    print("    CPU s per GiB PUT, full copy: " + ", ".join(
        f"{k} {v / gib:.1f}" for k, v in sorted(r["full_cpu"].items())) +
        " (ferry's includes its start-up); ceiling: " + ", ".join(
        f"{k} {v / (S3_ROUNDS * 128 / 1024):.1f}" for k, v in sorted(r["ceil_cpu"].items())))
    print(f"  increment, 2 % changed ({r['changed_blocks']} of {r['blocks']} blocks): "
          f"{r['inc_s']:.2f} s, {fmt_size(r['inc_written'])} PUT, requests {sum(ir.values())} "
          f"{ir} = {sum(ir.values()) / max(1, sum(fr.values())):.1%} of the full's; "
          f"{max(0, ir.get('PUT', 0) - 2)} PUTs of blocks (packs of up to 4 MiB) for "
          f"{r['changed_blocks']} changed blocks; "
          f"peak RSS {r['inc_rss']:.0f} MiB")
