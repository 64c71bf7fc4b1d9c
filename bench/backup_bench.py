"""Source backup job throughput next to this machine's ceilings.

    python bench/backup_bench.py [--size 2GiB] [--also 1GiB] [--runs 3]
                                 [--block-size 1MiB] [--compression optimal]
                                 [--warm] [--json FILE] [--keep-files]

For each size: writes a VM-like raw image (sample_repos.vmdata: ~40 % zero, ~30 %
text, ~30 % random 4 KiB pages, fully allocated), measures the ceilings
(bench/ceilings.py) on its blocks, then `runs` times: a full backup into a new
repository, `vmdata.mutate_disk` changing 2 % of the blocks, an incremental
backup. Each backup is a real `python -m engine.cli backup` subprocess; its
wall time and its own peak RSS (`os.wait4`) are recorded. The image is evicted
from the page cache before each backup (cold read) unless --warm.

Printed: MB/s of disk size per second (median, min-max), the ceilings, full vs
the two-thread hash+zstd ceiling, increment / full time, increment time against
its floor (cold read + hash of the whole disk, compress of the changed blocks),
peak RSS of full and increment per disk size (flat = memory bounded). Scratch
data lives in bench/out/ (gitignored) and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from ceilings import (  # noqa: E402
    MB,
    CeilingMeter,
    Ceilings,
    Figure,
    evict,
    format_ceilings,
    run_measured,
)

from engine.blockio import LEVELS  # noqa: E402
from engine.units import fmt_size, parse_size  # noqa: E402
from sample_repos import vmdata  # noqa: E402

SEED, OS_SEED = "bench-vm01", "bench-os-image"
CHANGE_PCT = 2.0


@dataclass
class Backup:
    wall_s: float
    rss_mib: float
    cpu_s: float
    read: int
    written: int


@dataclass
class SizeResult:
    size: int
    gen_s: float
    full: list[Backup] = field(default_factory=list)
    inc: list[Backup] = field(default_factory=list)
    changed_blocks: list[int] = field(default_factory=list)

    def fig(self, which: str, attr: str, scale=lambda v, s: v) -> Figure:
        return Figure([scale(getattr(b, attr), self.size) for b in getattr(self, which)])

    def mbps(self, which: str) -> Figure:
        return self.fig(which, "wall_s", lambda v, s: s / v / MB)


def run_backup(repo: Path, disk: Path, at: str, block_size: int, compression: str) -> Backup:
    """One `ferry backup` in a subprocess: wall time and that process's own peak RSS."""
    cmd = [sys.executable, "-m", "engine.cli", "backup", "--repo", str(repo), "--job", "Bench",
           "--machine", "vm01", "--disk", str(disk), "--block-size", str(block_size),
           "--compression", compression, "--at", at, "--json"]
    m = run_measured(cmd, cwd=ROOT)
    if m.returncode != 0:
        raise SystemExit(f"backup failed ({m.returncode}): {m.stderr.decode().strip()}")
    out, wall = m.stdout, m.wall_s
    res = json.loads(out)
    return Backup(wall, m.rss_mib, m.cpu_s, res["read"], res["written"])


def bench_size(size: int, args, work: Path, want_ceilings: bool) -> tuple[SizeResult, Ceilings | None]:
    work.mkdir(parents=True, exist_ok=True)
    image = work / "disk.raw"
    print(f"\n== {fmt_size(size)} disk: writing VM-like image ...", flush=True)
    t0 = time.perf_counter()
    st = vmdata.write_disk(image, size, SEED, OS_SEED, unit=args.block_size)
    res = SizeResult(size, time.perf_counter() - t0)
    print(f"   {res.gen_s:.1f}s ({size / res.gen_s / MB:,.0f} MB/s); zero {st.zero / size:.0%}, "
          f"text {st.text / size:.0%}, random {st.random / size:.0%}, "
          f"OS template {st.shared / size:.0%}", flush=True)
    meter = None
    if want_ceilings:
        print("   sampling blocks for the ceilings (measured before each run) ...", flush=True)
        meter = CeilingMeter(image, args.block_size, LEVELS[args.compression], work)
    repo = work / "repo"
    for r in range(args.runs):
        if meter is not None:
            c = meter.measure()
            print(f"   ceilings {r + 1}: hash+zstd {c.cpu1.values[-1]:,.0f} MB/s (1 thread), "
                  f"{c.cpu2.values[-1]:,.0f} (2 threads); write+fsync "
                  f"{c.write_fsync.values[-1]:,.0f}; cold read {c.read_cold.values[-1]:,.0f}; "
                  f"load {c.load.values[-1]:.1f}", flush=True)
        shutil.rmtree(repo, ignore_errors=True)
        if not args.warm:
            evict(image)
        full = run_backup(repo, image, "2026-11-01T21:00", args.block_size, args.compression)
        m = vmdata.mutate_disk(image, r + 1, SEED, CHANGE_PCT, unit=args.block_size)
        res.changed_blocks.append(vmdata.changed_blocks(m, args.block_size))
        if not args.warm:
            evict(image)
        inc = run_backup(repo, image, "2026-11-02T21:00", args.block_size, args.compression)
        res.full.append(full)
        res.inc.append(inc)
        print(f"   run {r + 1}: full {full.wall_s:.2f}s ({size / full.wall_s / MB:,.0f} MB/s, "
              f"CPU {full.cpu_s:.1f}s, wrote {fmt_size(full.written)}, RSS {full.rss_mib:.0f} "
              f"MiB); increment {inc.wall_s:.2f}s (CPU {inc.cpu_s:.1f}s, "
              f"{res.changed_blocks[-1]} blocks changed, wrote {fmt_size(inc.written)}, "
              f"RSS {inc.rss_mib:.0f} MiB)", flush=True)
    shutil.rmtree(repo, ignore_errors=True)
    return res, meter.ceilings if meter else None


def startup_cost(work: Path, args) -> Backup:
    """A one-block backup: interpreter start, imports, lock, fsyncs - the fixed cost."""
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "tiny.raw"
    vmdata.write_disk(disk, args.block_size, "tiny", unit=args.block_size)
    runs = []
    for _ in range(args.runs):
        shutil.rmtree(work / "tiny-repo", ignore_errors=True)
        runs.append(run_backup(work / "tiny-repo", disk, "2026-11-01T21:00", args.block_size,
                               args.compression))
    shutil.rmtree(work / "tiny-repo", ignore_errors=True)
    disk.unlink()
    runs.sort(key=lambda b: b.wall_s)
    return runs[len(runs) // 2]


def report(results: list[SizeResult], ceil: Ceilings, base: Backup, args) -> dict:
    main = results[0]
    size = main.size
    full, inc = main.mbps("full"), main.mbps("inc")
    full_s, inc_s = main.fig("full", "wall_s"), main.fig("inc", "wall_s")
    changed = sorted(main.changed_blocks)[len(main.changed_blocks) // 2] * args.block_size
    cpu2, cpu1 = ceil.cpu2.median, ceil.cpu1.median
    read = ceil.read_warm.median if args.warm else ceil.read_cold.median
    # what an increment cannot avoid without changed-block tracking: read + hash it all,
    # compress what changed (one thread's rate), plus the process's fixed cost
    floor_s = size / read / MB + size / ceil.hash.median / MB + changed / cpu1 / MB + base.wall_s
    written = sorted(b.written for b in main.full)[len(main.full) // 2]
    write_s = written / ceil.write_fsync.median / MB
    full_floor_s = max(size / min(cpu2, read) / MB, write_s) + base.wall_s

    print("\n" + format_ceilings(ceil))
    print(f"\nferry backup, {fmt_size(size)} VM-like disk, block {args.block_size >> 10} KiB, "
          f"compression {args.compression}, {args.runs} runs, "
          f"{'warm' if args.warm else 'cold'} page cache (MB/s of disk size, median, min-max)")
    print(f"  {'full':<30} {full.median:>9,.0f}   {full.spread()}   "
          f"[{full_s.median:.2f}s, wrote {fmt_size(main.full[0].written)}]")
    print(f"  {'increment (' + f'{CHANGE_PCT:g}' + ' % of blocks)':<30} {inc.median:>9,.0f}   "
          f"{inc.spread()}   [{inc_s.median:.2f}s, {fmt_size(changed)} changed]")
    print(f"  {'fixed cost (1-block backup)':<30} {base.wall_s:>8.2f}s   CPU {base.cpu_s:.2f}s, "
          f"RSS {base.rss_mib:.0f} MiB")
    per_run = Figure([size / b.wall_s / MB / c for b, c in zip(main.full, ceil.cpu2.values,
                                                                 strict=False)])
    full_cpu = main.fig("full", "cpu_s").median
    inc_cpu = main.fig("inc", "cpu_s").median
    ceil_cpu = size / cpu1 / MB  # CPU seconds the 1-thread ceiling spends on this disk
    print("\nratios")
    print(f"  full / two-thread hash+zstd ceiling        {full.median / cpu2:6.0%}"
          f"   (1 thread: {full.median / cpu1:.0%}; target >= 70 %)")
    print(f"    same, run by run (ceiling just before)    {per_run.median:6.0%}"
          f"   ({', '.join(f'{v:.0%}' for v in per_run.values)})")
    print(f"  full CPU time / ceiling CPU time            "
          f"{(full_cpu - base.cpu_s) / ceil_cpu:6.2f}x   ({full_cpu:.1f}s - {base.cpu_s:.1f}s fixed"
          f" vs {ceil_cpu:.1f}s of hash+zstd; CPU busy "
          f"{full_cpu / full_s.median / (os.cpu_count() or 1):.0%} of {os.cpu_count()} CPUs)")
    print(f"  full time / floor                           {full_s.median / full_floor_s:6.2f}x"
          f"   (floor {full_floor_s:.2f}s: max(read+hash+zstd at min(cpu2, read), "
          f"write+fsync of {fmt_size(written)} = {write_s:.2f}s) + fixed cost)")
    print(f"  increment time / full time                  {inc_s.median / full_s.median:6.2f}"
          f"   (changed share {changed / size:.1%})")
    print(f"  increment time / floor                      {inc_s.median / floor_s:6.2f}x"
          f"   (floor {floor_s:.2f}s = read + hash {fmt_size(size)}, "
          f"compress {fmt_size(changed)}, fixed cost)")
    print(f"  increment CPU time / full CPU time          {inc_cpu / full_cpu:6.2f}"
          f"   ({inc_cpu:.1f}s)")
    print(f"  increment s per changed GB                  "
          f"{inc_s.median / (changed / 1e9):8.1f}   (full: {full_s.median / (size / 1e9):.1f} s/GB)")
    print("\npeak RSS (MiB, median of runs)")
    for r in results:
        print(f"  {fmt_size(r.size):>10} disk: full {r.fig('full', 'rss_mib').median:6.0f}   "
              f"increment {r.fig('inc', 'rss_mib').median:6.0f}   "
              f"(1-block backup {base.rss_mib:.0f})")
    for r in results[1:]:
        print(f"  {fmt_size(r.size):>10} disk: full {r.mbps('full').median:,.0f} MB/s, "
              f"increment {r.mbps('inc').median:,.0f} MB/s")
    return {
        "block_size": args.block_size, "compression": args.compression, "warm": args.warm,
        "ceilings": ceil.as_dict(), "fixed_cost_s": base.wall_s, "fixed_cpu_s": base.cpu_s,
        "fixed_rss_mib": base.rss_mib,
        "sizes": [{"size": r.size, "gen_s": r.gen_s, "changed_blocks": r.changed_blocks,
                   "full": [b.__dict__ for b in r.full], "inc": [b.__dict__ for b in r.inc],
                   "full_mbps": r.mbps("full").as_dict(), "inc_mbps": r.mbps("inc").as_dict()}
                  for r in results],
        "ratios": {"full_vs_cpu2": full.median / cpu2, "full_vs_cpu2_per_run": per_run.values,
                   "full_cpu_vs_ceiling_cpu": (full_cpu - base.cpu_s) / ceil_cpu,
                   "inc_vs_full_time": inc_s.median / full_s.median,
                   "inc_vs_floor": inc_s.median / floor_s},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=parse_size, default=parse_size("2GiB"))
    ap.add_argument("--also", default="1GiB",
                    help="comma-separated further sizes (RSS vs disk size); '' for none")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--block-size", type=parse_size, default=1 << 20)
    ap.add_argument("--compression", default="optimal", choices=list(LEVELS))
    ap.add_argument("--warm", action="store_true", help="do not evict the image before backups")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--keep-files", action="store_true")
    args = ap.parse_args(argv)
    sizes = [args.size] + [parse_size(s) for s in args.also.split(",") if s.strip()]
    work = args.out / f"backup-bench-{os.getpid()}"
    try:
        base = startup_cost(work, args)
        results, ceil = [], None
        for i, size in enumerate(sizes):
            res, c = bench_size(size, args, work / f"size-{size}", want_ceilings=i == 0)
            results.append(res)
            ceil = ceil or c
            if not args.keep_files:
                shutil.rmtree(work / f"size-{size}", ignore_errors=True)
        data = report(results, ceil, base, args)
        if args.json:
            args.json.write_text(json.dumps(data, indent=1))
    finally:
        if not args.keep_files:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
