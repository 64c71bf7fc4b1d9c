"""Backup copy job throughput next to this machine's ceilings (and restic copy).

    python bench/copy_bench.py [--size 2GiB] [--also 1GiB] [--runs 3] [--json FILE]

For each size: a VM-like image (sample_repos.vmdata) is backed up once into a source
repository (setup, not timed). Then `runs` times: a full copy with `ferry run`
(compression auto: stored blocks are verified against their digests and pass
through), the same full copy encrypted (`[storage] encryption`: AES-256-GCM
sealing and keyed digests on the source side; the ratio to the plain one is
reported), a full copy recompressing at `high` (zstd 3, so the two-thread
hash+compress ceiling applies), a 2 %-changed source increment and its
incremental copy. Each copy is a real `python -m engine.cli run` subprocess;
wall time and its own peak RSS are recorded. Ceilings come from
bench/ceilings.py on the same image in the same run. When Debian's restic is
installed, `restic copy` of the same image between two local repositories is
timed too. Scratch data lives in bench/out/ and is removed at the end.

Remote movers on loopback (default on, `--no-remote` skips them; `--only-remote` for
those alone): the same full copy through a TLS and an SSH mover, as a share of the
in-process full's throughput (bench/remote_bench.py). With Ceph installed (`--s3-size`,
default 512MiB; 0 skips it; `--only-s3`): a copy to a RADOS gateway next to its PUT
ceiling (bench/s3_bench.py). Shared job files and commands: bench/benchjob.py.

A quick local round (no remote, no S3, no second size, one run):
    python bench/copy_bench.py --no-remote --s3-size 0 --also 0 --runs 1
The recompressing copy alone, each run next to its own ceilings (~1 min for 3 runs):
    python bench/copy_bench.py --only-recompress --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import remote_bench  # noqa: E402
from benchjob import PW_ENV, T0, backup, ferry, job_file, med  # noqa: E402
from ceilings import (  # noqa: E402
    MB,
    Figure,
    format_ceilings,
    measure_ceilings,
    recompress_floor,
    run_measured,
    sample_blocks,
)
from remote_bench import Remotes, bench_remote, remote_copy  # noqa: E402
from s3_bench import report_s3, s3_bench  # noqa: E402

from engine.units import fmt_size, parse_size  # noqa: E402
from sample_repos import vmdata  # noqa: E402


def copy_once(work: Path, size: int, run: int, remotes: Remotes | None = None) -> dict:
    src, disk = work / "src", work / "disk.img"
    out = {}
    for label in (remotes.targets if remotes else ()):
        out[label] = remote_copy(work, src, size, label, remotes)
    for label, comp in (("full_auto", "auto"), ("full_encrypted", "auto"), ("full_high", "high")):
        dst = work / f"dr-{label}-{run}"
        job = job_file(work / f"{label}.toml", f"C{label}", src, dst, comp,
                       encrypted=label == "full_encrypted")
        m = run_measured(ferry("run", job, "--json", "--at", (T0 + timedelta(hours=1)).isoformat()))
        if m.returncode:
            raise SystemExit(m.stderr.decode())
        task = json.loads(m.stdout)["tasks"][0]
        out[label] = {"s": m.wall_s, "rss": m.rss_mib, "mbps": size / m.wall_s / MB,
                      "cpu_s": m.cpu_s, "transferred": task["transferred"],
                      "bottleneck": task["bottleneck"]}
        if label != "full_auto":
            shutil.rmtree(dst)
    day = run + 1
    mut = vmdata.mutate_disk(disk, day, "bench-copy", 2.0)
    at = T0 + timedelta(days=day)
    backup(src, disk, at)
    job = work / "full_auto.toml"
    m = run_measured(ferry("run", job, "--json", "--at", (at + timedelta(hours=1)).isoformat()))
    task = json.loads(m.stdout)["tasks"][0]
    out["increment"] = {"s": m.wall_s, "rss": m.rss_mib, "read": task["read"],
                        "transferred": task["transferred"], "kind": task["kind"],
                        "changed_blocks": vmdata.changed_blocks(mut, 1 << 20)}
    idle = [run_measured(ferry("run", job, "--json", "--at",
                               (at + timedelta(hours=2 + k)).isoformat())) for k in range(IDLE_RUNS)]
    # nothing new: process start, imports, planning, history
    out["idle"] = {"s": med([m.wall_s for m in idle]), "all_s": [m.wall_s for m in idle],
                   "cpu_s": [m.cpu_s for m in idle]}
    shutil.rmtree(work / f"dr-full_auto-{run}")
    return out


IDLE_RUNS = 5  # runs with nothing to copy, per round (the start-up floor is short and noisy)


def restic_copy(work: Path, disk: Path) -> float | None:
    if not shutil.which("restic"):
        return None
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_CACHE_DIR": str(work / "rcache")}
    a, b = work / "restic-a", work / "restic-b"
    for r in (a, b):
        subprocess.run(["restic", "init", "-q", "-r", r], env=env, check=True,
                       capture_output=True)
    subprocess.run(["restic", "backup", "-q", "-r", a, disk], env=env, check=True,
                   capture_output=True)
    t0 = time.perf_counter()
    subprocess.run(["restic", "copy", "-q", "-r", b, "--from-repo", a,
                    "--from-password-file", "/dev/stdin"], input=b"bench", env=env, check=True,
                   capture_output=True)
    return time.perf_counter() - t0


def bench_size(size: int, runs: int, work: Path, ceilings: bool, remote: bool = False) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.img"
    vmdata.write_disk(disk, size, "bench-copy", "bench-os")
    backup(work / "src", disk, T0, quiet=False)
    remotes = Remotes(work) if remote else None
    try:
        res = {"size": size, "runs": [copy_once(work, size, r, remotes) for r in range(runs)]}
    finally:
        if remotes is not None:
            remotes.close()
    res["ssh_skipped"] = remotes.ssh_skipped if remotes else None
    if ceilings:
        res["ceil1"] = measure_ceilings(disk, 1 << 20, 1, work, runs=runs)
        res["ceil3"] = measure_ceilings(disk, 1 << 20, 3, work, runs=runs, read_file=False)
        res["floor3"], res["floor3_cpu"] = floor_figures(disk, work, size, runs)
    res["restic_s"] = restic_copy(work, disk)
    return res


def floor_figures(disk: Path, work: Path, size: int, runs: int) -> tuple[Figure, Figure]:
    """The recompress floor (zstd 1 -> 3) `runs` times: MB/s, and CPU seconds for the
    whole image (the sample's CPU per byte x the image's size)."""
    blocks = sample_blocks(disk, 1 << 20)
    floor, cpu = Figure(), Figure()
    for _ in range(runs):
        mbps, per_byte = recompress_floor(blocks, 1, 3, work)
        floor.values.append(mbps)
        cpu.values.append(per_byte * size)
    return floor, cpu


def recompress_only(size: int, runs: int, work: Path) -> None:
    """`--only-recompress`: the recompressing full alone, each run right after its own
    zstd-3 ceiling and floor (same load), for quick rounds on that path."""
    from ceilings import CeilingMeter

    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.img"
    vmdata.write_disk(disk, size, "bench-copy", "bench-os")
    backup(work / "src", disk, T0, quiet=False)
    meter = CeilingMeter(disk, 1 << 20, 3, work, read_file=False)
    copies: list[dict] = []
    floors, cpus = Figure(), Figure()
    for r in range(runs):
        meter.measure()
        f, c = floor_figures(disk, work, size, 1)
        floors.values += f.values
        cpus.values += c.values
        dst = work / f"dr-high-{r}"
        job = job_file(work / "high.toml", "Chigh", work / "src", dst, "high")
        m = run_measured(ferry("run", job, "--json", "--at", (T0 + timedelta(hours=1)).isoformat()))
        if m.returncode:
            raise SystemExit(m.stderr.decode())
        copies.append({"s": m.wall_s, "cpu_s": m.cpu_s,
                       "bottleneck": json.loads(m.stdout)["tasks"][0]["bottleneck"]})
        shutil.rmtree(dst)
    c3 = meter.ceilings
    print(format_ceilings(c3))
    report_recompress(size, copies, c3.cpu2, floors, cpus)


def report_recompress(size: int, copies: list[dict], cpu2: Figure, floor: Figure | None,
                      floor_cpu: Figure | None) -> None:
    mbps = size / MB
    fh = med([c["s"] for c in copies])
    each = ", ".join(f"{c['s']:.2f}" for c in copies)
    print(f"  full, recompress at high (zstd 3):             {mbps / fh:8,.0f} MB/s  "
          f"{fh:.2f} s  = {mbps / fh / cpu2.median:.0%} of the 2-thread zstd-3 ceiling "
          f"(goal >= 85 %); runs {each} s; "
          f"bottleneck {copies[0]['bottleneck']}")
    if floor is None or floor_cpu is None:
        return
    print(f"    the least such a copy must do (read the stored zstd-1 block, decompress, xxh3 "
          f"against its digest, zstd-3, write; fsync), 2 threads: {floor.median:,.0f} MB/s "
          f"{floor.spread()} = {floor.median / cpu2.median:.0%} of that ceiling (the bound of "
          f"a copy); the copy reaches {mbps / fh / floor.median:.0%} of it")
    cpu_h = med([c.get("cpu_s", float("nan")) for c in copies])
    fc = floor_cpu.median
    print(f"    CPU time (all threads, load-independent): the copy {cpu_h:.2f} s, that work "
          f"alone {fc:.2f} s for the whole image = {fc / cpu_h:.0%} CPU efficiency "
          f"(the rest: start-up, planning, frames, the writer's journal and page-cache "
          f"drops)")


def buffers(block: int, stored: float) -> tuple[list[str], float]:
    """The block buffers a local full copy holds at most, from the engine's own bounds
    (lines for the report, total MiB): `stored` = the average stored payload."""
    from engine.blockio import THREADS
    from engine.copy.source import IN_FLIGHT
    from engine.copy.target_stream import PIPE_FRAMES
    from engine.repository.container import WRITE_CHUNK, WRITE_DEPTH

    mib = 1 << 20
    rows = [(f"{IN_FLIGHT} frames in flight at the source (a stored payload each)", IN_FLIGHT * stored),
            (f"{THREADS} block threads x (stored + decoded {block // mib} MiB + recompressed)",
             THREADS * (stored + block + stored)),
            (f"{PIPE_FRAMES} frames in the in-process pipe", PIPE_FRAMES * stored),
            ("1 frame being checked by the target (its decoded block)", stored + block),
            (f"{WRITE_DEPTH + 1} write buffers of {WRITE_CHUNK // mib} MiB (queued + filling)",
             (WRITE_DEPTH + 1) * WRITE_CHUNK)]
    return [f"    {what}: {n / mib:5.1f} MiB" for what, n in rows], sum(n for _, n in rows) / mib


def report(results: list[dict]) -> None:
    main = results[0]
    size = main["size"]
    runs = main["runs"]
    fa = med([r["full_auto"]["s"] for r in runs])
    fe = med([r["full_encrypted"]["s"] for r in runs])
    inc = med([r["increment"]["s"] for r in runs])
    idle = med([r["idle"]["s"] for r in runs])
    idle_all = [s for r in runs for s in r["idle"].get("all_s", [r["idle"]["s"]])]
    idle_cpu = [s for r in runs for s in r["idle"].get("cpu_s", [])]
    c1, c3 = main["ceil1"], main["ceil3"]
    print(format_ceilings(c1))
    print(format_ceilings(c3))
    mbps = size / MB
    print(f"\ncopy of {fmt_size(size)} VM-like data, {len(runs)} runs (median):")
    print(f"  full, compression auto (verify + pass-through): {mbps / fa:8,.0f} MB/s  "
          f"{fa:.2f} s  = {mbps / fa / c1.cpu2.median:.0%} of the 2-thread zstd-1 ceiling, "
          f"{mbps / fa / c1.write_fsync.median:.0%} of write+fsync")
    rss_plain = max(r["full_auto"]["rss"] for r in runs)
    rss_enc = max(r["full_encrypted"]["rss"] for r in runs)
    print(f"  full, encrypted (AES-256-GCM, keyed digests):  {mbps / fe:8,.0f} MB/s  "
          f"{fe:.2f} s  = {fa / fe:.0%} of the unencrypted full's throughput (goal >= 80 %); "
          f"peak RSS {rss_enc:.0f} MiB vs {rss_plain:.0f} MiB")
    for label, what in (("full_tls", "TLS mover (tls://, pinned cert, token)"),
                        ("full_ssh", "SSH mover (ssh://, forced command)")):
        if label in runs[0]:
            t = med([r[label]["s"] for r in runs])
            print(f"  full through a {what} on loopback: {mbps / t:8,.0f} MB/s  {t:.2f} s  = "
                  f"{fa / t:.0%} of the in-process full (goal >= 70 %); bottleneck "
                  f"{runs[0][label]['bottleneck']}")
    if main.get("ssh_skipped"):
        print(f"  ssh:// not measured: {main['ssh_skipped']}")
    report_recompress(size, [r["full_high"] for r in runs], c3.cpu2, main.get("floor3"),
                      main.get("floor3_cpu"))
    r0 = runs[0]["increment"]
    print(f"  increment, 2 % changed blocks:                  {inc:.2f} s = {inc / fa:.1%} of the "
          f"full; read {fmt_size(r0['read'])}, transferred {fmt_size(r0['transferred'])}")
    print(f"  a run with nothing to copy (start-up floor):    {idle:.3f} s median, "
          f"{min(idle_all):.3f} s min of {len(idle_all)} (goal <= 0.1 s); CPU "
          f"{med(idle_cpu) if idle_cpu else float('nan'):.3f} s median; bytecode cached, as "
          f"an installed Ferry has it")
    print(f"    increment net of it "
          f"{max(0.0, inc - idle):.2f} s = {max(0.0, inc - idle) / max(fa - idle, 1e-9):.1%} of the "
          f"full net of it")
    print(f"  bottleneck of the full: {runs[0]['full_auto']['bottleneck']}")
    for r in results:
        rss = max(max(x["full_auto"]["rss"], x["full_encrypted"]["rss"], x["full_high"]["rss"],
                      x["increment"]["rss"])
                  for x in r["runs"])
        print(f"  peak RSS at {fmt_size(r['size'])}: {rss:.0f} MiB")
    stored = main["runs"][0]["full_auto"]["transferred"] / max(1, -(-size // (1 << 20)))
    lines, total = buffers(1 << 20, stored)
    print(f"  block buffers alive at most (average stored payload {stored / (1 << 20):.2f} MiB): "
          f"{total:.0f} MiB, independent of the disks' size:")
    print("\n".join(lines))
    if main["restic_s"]:
        print(f"  restic copy of the same image: {main['restic_s']:.2f} s "
              f"({mbps / main['restic_s']:,.0f} MB/s)")
    else:
        print("  restic not installed: no side-by-side figure")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="2GiB")
    ap.add_argument("--also", default="1GiB", help="a second size to show RSS is flat")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-remote", action="store_true", help="skip the TLS and SSH copies")
    ap.add_argument("--s3-size", default="512MiB", help="the S3 copy's image (0: skip)")
    ap.add_argument("--only-s3", action="store_true", help="only the S3 part")
    ap.add_argument("--only-remote", action="store_true",
                    help="only the in-process full and the TLS/SSH copies (CPU per side, "
                         "transport ceilings); no S3")
    ap.add_argument("--only-recompress", action="store_true",
                    help="only the recompressing full (zstd 1 -> 3), each run after its own "
                         "zstd-3 ceiling and floor")
    ap.add_argument("--no-ceilings", action="store_true",
                    help="with --only-remote: skip the ssh/TLS ceilings")
    ap.add_argument("--json", help="write the raw figures to this file")
    args = ap.parse_args(argv)
    out = HERE / "out" / "copy"
    shutil.rmtree(out, ignore_errors=True)
    # the commands run with their bytecode cached, as an installed Ferry's is (pip compiles
    # it); without this, PYTHONDONTWRITEBYTECODE=1 makes every run compile ~100 modules
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(out / "pycache")
    os.environ.setdefault(PW_ENV, "bench password")  # the encrypted full's job reads it
    try:
        if args.only_remote:
            size = parse_size(args.size)
            runs = bench_remote(size, args.runs, out / "r", not args.no_ceilings)
            if args.json:
                Path(args.json).write_text(json.dumps(runs, indent=1))
            remote_bench.report(runs, size, med, size / MB)
            return 0
        if args.only_recompress:
            recompress_only(parse_size(args.size), args.runs, out / "z")
            return 0
        if not args.only_s3:
            results = [bench_size(parse_size(args.size), args.runs, out / "a", True,
                                  remote=not args.no_remote)]
            if parse_size(args.also):
                results.append(bench_size(parse_size(args.also), 1, out / "b", False))
            report(results)
        if parse_size(args.s3_size):
            report_s3(s3_bench(parse_size(args.s3_size), out / "s3"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
