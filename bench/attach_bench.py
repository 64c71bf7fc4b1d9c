"""Attach bench: a console attaching mid-run to a run of another process.

    .venv/bin/python bench/attach_bench.py [--machines 500] [--seconds 5]

A producer *process* plays the engine through a real `engine.live` Publisher
(state folder, journal, socket): every 0.1 s one TaskProgress per machine
(5,000 events/s for 500 machines), `processed` = step x 1 MiB so the console's
lag can be read off its model. After a warm-up the console (headless, 160x48,
live screen open, frames encoded as a terminal would need) starts, finds the
session and attaches. Prints:

- start_to_current_s: from the console's start (Textual start-up included) to
  every machine current within 1 s; attach_to_current_s: from the moment it
  attached to the session
- lag_s: median and worst lag of the slowest machine while streaming: how long
  ago the first step it does not show yet was published by the engine
- cpu_console_pct: the console process's CPU while attached (one core = 100)
- publish_us: what publishing costs per event in the engine with nobody
  watching (in-process, Publisher.push vs a no-op sink), and as % of a core at
  the producer's event rate
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from console.app import FerryConsole  # noqa: E402
from console.backend import Backend  # noqa: E402
from console.records import JobEntry, LastRun, MachineInfo  # noqa: E402
from console.screens.live import LiveRunScreen  # noqa: E402
from engine import events as ev  # noqa: E402
from engine.copy.control import RunControl  # noqa: E402
from engine.jobs.schema import JobSpec, Source, Target  # noqa: E402
from engine.model import Stats  # noqa: E402

JOB = "Bench copy"
MIB = 1 << 20
INTERVAL = 0.1


def bench_spec(root: Path) -> JobSpec:
    return JobSpec(path=root / "jobs" / "bench.toml", name=JOB,
                   source=Source(repository=root / "src", jobs=["Daily"]),
                   target=Target(repository=root / "dst"))


def progress(machine: str, step: int) -> ev.TaskProgress:
    done = step * MIB
    return ev.TaskProgress(JOB, machine, Stats(processed=done, read=done // 2,
                                               transferred=done // 6), 1 << 40,
                           rate=50.0 * MIB, bottleneck={"Source": 0.4, "Target": 0.8},
                           to_read=1 << 39, disks={"disk0": done / (1 << 40)})


def producer(root: Path, machines: int) -> int:
    """The engine's side, in its own process: publish and stream until stdin closes."""
    import threading

    from engine.live.publisher import Publisher

    spec = bench_spec(root)
    pub = Publisher(spec, "bench-session", RunControl(), "bench")
    names = [f"vm{i:04d}" for i in range(machines)]
    pub.push(ev.RunStarted(JOB, "bench-session", names))
    for m in names:
        pub.push(ev.TaskStarted(JOB, m, "incremental", 1 << 40))
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    t0 = time.monotonic()
    step = 0
    while not stop.is_set():
        step += 1
        for m in names:
            pub.push(progress(m, step))
        print(json.dumps({"step": step, "at": time.time()}), flush=True)  # all published
        stop.wait(max(0.0, t0 + step * INTERVAL - time.monotonic()))
    pub.push(ev.RunFinished(JOB, "bench-session", "Success", time.monotonic() - t0))
    pub.close()
    return 0


class AttachBackend(Backend):
    """The bench job, nothing else on disk; live sessions read for real."""

    def __init__(self, root: Path) -> None:
        super().__init__(root / "jobs")
        self.spec = bench_spec(root)

    def discover(self) -> list[JobEntry]:
        return [JobEntry(self.spec.path, self.spec)]

    def machines(self, spec: JobSpec) -> list[MachineInfo]:
        return []

    def last_run(self, spec: JobSpec) -> LastRun | None:
        return None


def publish_cost(machines: int, events: int = 50_000) -> float:
    """µs per event that publishing adds to the engine's sink, nobody watching."""
    from engine.live.publisher import Publisher

    with tempfile.TemporaryDirectory() as tmp:
        spec = bench_spec(Path(tmp))
        spec.path.parent.mkdir(parents=True)
        pub = Publisher(spec, "cost", RunControl(), "bench")
        names = [f"vm{i:04d}" for i in range(machines)]
        pub.push(ev.RunStarted(JOB, "cost", names))
        batch = [progress(names[i % machines], i // machines + 1) for i in range(events)]
        t0 = time.perf_counter()
        for e in batch:
            pub.push(e)
        spent = time.perf_counter() - t0
        t0 = time.perf_counter()
        for e in batch:
            ev.discard(e)
        base = time.perf_counter() - t0
        pub.close()
    return max(0.0, spent - base) / events * 1e6


def attach_once(machines: int, seconds: float, warmup: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "jobs").mkdir()
        proc = subprocess.Popen([sys.executable, __file__, "--producer", str(root),
                                 "--machines", str(machines)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        published: dict[int, float] = {}  # step -> wall time all its events were out

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                msg = json.loads(line)
                published[msg["step"]] = msg["at"]

        import threading

        threading.Thread(target=read, daemon=True).start()
        try:
            time.sleep(warmup)  # the run is well under way when the console comes
            return _console(root, machines, seconds, published)
        finally:
            proc.stdin.close()  # type: ignore[union-attr]
            proc.wait(timeout=30)


def _console(root: Path, machines: int, seconds: float,
             published: dict[int, float]) -> dict[str, float]:
    app = FerryConsole(backend=AttachBackend(root), pump_interval=0.25, watch_hangup=False)
    original_display = app._display

    def encoding_display(screen: Any, renderable: Any) -> None:
        if renderable is not None and not app._batch_count:
            render = getattr(renderable, "render_segments", None)
            if render is not None:
                render(app.console)  # what a real terminal would be sent
        original_display(screen, renderable)

    app._display = encoding_display  # type: ignore[method-assign]
    key = str(root / "jobs" / "bench.toml")
    out: dict[str, float] = {}

    def lag() -> float | None:
        session = app.sessions.get(key)
        if session is None or len(session.model.rows) < machines:
            return None
        # how long ago the first step the slowest machine does not show yet was published
        slowest = min(r.processed for r in session.model.rows.values()) // MIB
        unseen = published.get(slowest + 1)
        return 0.0 if unseen is None else max(0.0, time.time() - unseen)

    async def main() -> None:
        start = time.perf_counter()
        async with app.run_test(size=(160, 48)) as pilot:
            attached = None
            while True:
                if attached is None and key in app.sessions:
                    attached = time.perf_counter()  # the console found it and attached
                current = lag()
                if current is not None and current <= 1.0:
                    break
                if time.perf_counter() - start > 30:
                    raise SystemExit("the console never caught up")
                await pilot.pause(0.02)
            out["start_to_current_s"] = time.perf_counter() - start
            out["attach_to_current_s"] = time.perf_counter() - (attached or start)
            app.open_live(key)
            await pilot.pause(0.3)
            assert isinstance(app.screen, LiveRunScreen)
            lags = []
            wall0, cpu0 = time.perf_counter(), time.process_time()
            while time.perf_counter() - wall0 < seconds:
                await pilot.pause(0.25)
                value = lag()
                if value is not None:
                    lags.append(value)
            wall = time.perf_counter() - wall0
            out["cpu_console_pct"] = 100 * (time.process_time() - cpu0) / wall
            out["lag_median_s"] = statistics.median(lags)
            out["lag_worst_s"] = max(lags)

    asyncio.run(main())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--producer", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.producer:
        return producer(args.producer, args.machines)
    rate = args.machines / INTERVAL
    cost = publish_cost(args.machines)
    print(f"attach bench: {args.machines} machines streaming ({rate:,.0f} events/s), "
          f"{os.cpu_count()} cores")
    print(f"  publishing, nobody watching: {cost:.1f} µs/event = "
          f"{cost * rate / 1e4:.1f} % of a core at {rate:,.0f} events/s")
    runs = []
    for n in range(args.runs):
        r = attach_once(args.machines, args.seconds, args.warmup)
        runs.append(r)
        print(f"  run {n + 1}: " + "  ".join(f"{k}={v:.2f}" for k, v in r.items()))
    print("median: " + "  ".join(f"{k}={statistics.median(r[k] for r in runs):.2f}"
                                 for k in runs[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
