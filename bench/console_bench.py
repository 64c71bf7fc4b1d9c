"""Console live-view bench: N machines streaming TaskProgress into the live run screen.

    .venv/bin/python bench/console_bench.py [--machines 500] [--seconds 5] [--runs 3]
    .venv/bin/python bench/console_bench.py --attach [...]   (bench/attach_bench.py: a
        console attaching mid-run to a run of another process)

A producer thread plays the engine: every 0.1 s it sends one TaskProgress per
machine (the engine throttles progress to ~10/s per task), i.e. 5,000 events/s
for 500 machines. The console runs headless at 160x48; every frame Textual
hands to the driver is also encoded to terminal bytes (as a real terminal
would need), so the CPU figure includes output.

Prints, per run and as medians: frames rendered per second (driver updates),
live-view syncs per second, DataTable cells updated per second, events pushed
per second, and CPU share of the process (all threads) and of the UI alone
(process minus the producer thread).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.app import FerryConsole  # noqa: E402
from console.backend import Backend  # noqa: E402
from console.clock import SystemClock  # noqa: E402
from console.records import JobEntry, LastRun, MachineInfo  # noqa: E402
from console.screens.live import LiveRunScreen  # noqa: E402
from console.widgets.machine_table import MachineTable  # noqa: E402
from engine import events as ev  # noqa: E402
from engine.copy.control import RunControl  # noqa: E402
from engine.jobs.schema import JobSpec, Source, Target  # noqa: E402
from engine.model import Stats  # noqa: E402

JOB = "Bench copy"
PATH = Path("/bench/jobs/bench.toml")
GIB = 1024**3


class BenchBackend(Backend):
    """One job, nothing on disk."""

    def __init__(self) -> None:
        super().__init__(PATH.parent)

    def discover(self) -> list[JobEntry]:
        spec = JobSpec(path=PATH, name=JOB, source=Source(repository=Path("/bench/src"), jobs=["Daily"]),
                       target=Target(repository=Path("/bench/dst")))
        return [JobEntry(PATH, spec)]

    def machines(self, spec: JobSpec) -> list[MachineInfo]:
        return []

    def last_run(self, spec: JobSpec) -> LastRun | None:
        return None


class Producer(threading.Thread):
    """Plays the engine: a progress event per machine every `interval` seconds."""

    def __init__(self, sink: Any, machines: list[str], interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.sink, self.machines, self.interval = sink, machines, interval
        self.stop = threading.Event()
        self.events = 0
        self.cpu = 0.0

    def run(self) -> None:
        t_cpu = time.thread_time()
        total = 40 * GIB
        self.sink(ev.RunStarted(JOB, "bench", list(self.machines)))
        for m in self.machines:
            self.sink(ev.TaskStarted(JOB, m, "incremental", total))
        step = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            step += 1
            for i, m in enumerate(self.machines):
                processed = min(total, (step * (i % 97 + 1) * 3 * 1024**2))
                read = processed // 4
                self.sink(ev.TaskProgress(
                    JOB, m, Stats(processed=processed, read=read, transferred=read // 3),
                    total, rate=(100 + i % 50) * 1024**2,
                    bottleneck={"Source": 0.4, "Compress": 0.2, "Stream": 0.1, "Target": 0.8}))
                self.events += 1
                if i % 50 == 0:
                    self.sink(ev.LogLine(JOB, "info", f"step {step}", m))
                    self.events += 1
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))
        self.cpu = time.thread_time() - t_cpu


def run_once(machines: int, seconds: float, size: tuple[int, int]) -> dict[str, float]:
    app = FerryConsole(backend=BenchBackend(), clock=SystemClock(), pump_interval=0.25,
                       watch_hangup=False)
    counts = {"frames": 0}
    original_display = app._display

    def counting_display(screen: Any, renderable: Any) -> None:
        if renderable is not None and not app._batch_count:
            counts["frames"] += 1
            render = getattr(renderable, "render_segments", None)
            if render is not None:
                render(app.console)  # what a real terminal would be sent
        original_display(screen, renderable)

    app._display = counting_display  # type: ignore[method-assign]
    result: dict[str, float] = {}

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            while not app.jobs:
                await pilot.pause(0.05)
            key = str(PATH)
            session = app.new_session(key, RunControl())
            app.open_live(key)
            await pilot.pause(0.3)
            screen = app.screen
            assert isinstance(screen, LiveRunScreen)
            table = screen.query_one(MachineTable)
            names = [f"vm{i:04d}" for i in range(machines)]
            producer = Producer(session.sink, names)
            frames0, syncs0, cells0 = counts["frames"], screen.frames, table.updates
            wall0, cpu0 = time.perf_counter(), time.process_time()
            producer.start()
            await asyncio.sleep(seconds)
            producer.stop.set()
            producer.join()
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            await pilot.pause(0.3)
            assert table.row_count == machines, table.row_count
            result.update(
                frames_per_s=(counts["frames"] - frames0) / wall,
                syncs_per_s=(screen.frames - syncs0) / wall,
                cells_per_s=(table.updates - cells0) / wall,
                events_per_s=producer.events / wall,
                cpu_process_pct=100 * cpu / wall,
                cpu_ui_pct=100 * (cpu - producer.cpu) / wall,
                rows=float(table.row_count),
            )

    asyncio.run(main())
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--attach" in argv:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import attach_bench

        return attach_bench.main([a for a in argv if a != "--attach"])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", default="160x48", help="terminal size WxH")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    keys = ["frames_per_s", "syncs_per_s", "cells_per_s", "events_per_s", "cpu_process_pct",
            "cpu_ui_pct"]
    print(f"console bench: {args.machines} machines, {args.seconds:.0f}s x {args.runs} runs, "
          f"{width}x{height}")
    runs = []
    for n in range(args.runs):
        r = run_once(args.machines, args.seconds, (width, height))
        runs.append(r)
        print(f"  run {n + 1}: " + "  ".join(f"{k}={r[k]:.1f}" for k in keys))
    print("median: " + "  ".join(
        f"{k}={statistics.median(r[k] for r in runs):.1f}" for k in keys))
    if args.runs > 1:
        print("spread: " + "  ".join(
            f"{k}={min(r[k] for r in runs):.1f}..{max(r[k] for r in runs):.1f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
