"""How long `ferry preview` takes to simulate ten years of daily runs with full GFS.

Target (engine/simulate.py): < 0.5 s for `simulate` over 3650 daily runs with weekly,
monthly and yearly GFS. Prints the median of several runs next to the JSON cost and a
tiny pure-Python loop, so a slow machine shows up as slow for both.

    .venv/bin/python bench/preview_bench.py [--runs 7] [--years 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.model import GfsCycle, GfsPolicy, RetentionPolicy  # noqa: E402
from engine.preview_render import preview_json  # noqa: E402
from engine.simulate import simulate, sizing_from_model  # noqa: E402

TARGET_S = 0.5


def timed(fn, runs: int) -> tuple[float, float, object]:
    """Median wall-clock and median CPU seconds (CPU time shrugs off a busy shared box)."""
    wall, cpu, out = [], [], None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), out


def python_speed() -> float:
    """Seconds for a fixed loop of 2 million additions: the machine's own yardstick."""
    t0 = time.perf_counter()
    total = 0
    for i in range(2_000_000):
        total += i
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--years", type=int, default=10)
    args = ap.parse_args()
    days = 365 * args.years
    policy = RetentionPolicy(keep=7, gfs=GfsPolicy(weekly=GfsCycle(4, "sunday"),
                                                   monthly=GfsCycle(12, "first"),
                                                   yearly=GfsCycle(3, "january")))
    sizing = sizing_from_model(2 * 1024**4, change_pct=10, reduction_pct=50)
    start = datetime(2026, 1, 1, 22, 0)

    sim_s, sim_cpu, result = timed(
        lambda: simulate("bench", policy, "periodic", start, days, sizing), args.runs)
    json_s, _, doc = timed(lambda: json.dumps(preview_json(result)), max(1, args.runs // 2))
    days_mode = RetentionPolicy(keep=14, unit="days", gfs=policy.gfs)
    days_s, days_cpu, _ = timed(
        lambda: simulate("bench", days_mode, "immediate", start, days, sizing), args.runs)
    plain = RetentionPolicy(keep=30)
    ff_s, ff_cpu, _ = timed(
        lambda: simulate("bench", plain, "periodic", start, days, sizing), args.runs)
    loop_s = python_speed()

    last = result.days[-1]
    print(f"simulate {days} daily runs, W4 M12 Y3, keep 7 points, periodic : "
          f"median {sim_s:.3f} s wall, {sim_cpu:.3f} s CPU over {args.runs} runs "
          f"({'OK' if sim_s < TARGET_S else 'SLOW'}: target < {TARGET_S} s)")
    print(f"simulate {days} daily runs, W4 M12 Y3, keep 14 days, immediate : "
          f"median {days_s:.3f} s wall, {days_cpu:.3f} s CPU")
    print(f"simulate {days} daily runs, no GFS, keep 30 points (merges)    : "
          f"median {ff_s:.3f} s wall, {ff_cpu:.3f} s CPU")
    print(f"preview_json + json.dumps of the first                          : "
          f"median {json_s:.3f} s ({len(doc) / 1e6:.1f} MB)")
    print(f"last day: {len(last.points)} points; worst day {result.worst_day.date} "
          f"with {len(result.worst_day.points)} points")
    print(f"yardstick: 2M-iteration pure Python loop                        : {loop_s:.3f} s")
    return 0 if sim_s < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
