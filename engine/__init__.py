"""Ferry's engine: repositories, copy jobs, movers, retention (no UI; see docs/ARCHITECTURE.md)."""

import gc

# A command's start-up makes ~25,000 objects the collector tracks (modules, classes,
# functions) and no garbage cycles: at CPython's default threshold of 700 that was ~35
# young and 3 older collections scanning them, ~4.5 ms of a run with nothing to copy
# (issue 15). 50,000 lets a command start without a collection; the collector still
# runs (for the cycles of a long run, the console, the daemon), only less often.
if gc.get_threshold()[0] < 50_000:
    gc.set_threshold(50_000, *gc.get_threshold()[1:])

from engine import dataclass_cache  # noqa: E402 - after the collector's setting

dataclass_cache.install()  # every command makes dozens of dataclasses: compile them once
