"""Ferry's engine: repositories, copy jobs, movers, retention (no UI; see docs/ARCHITECTURE.md)."""

from engine import dataclass_cache

dataclass_cache.install()  # every command makes dozens of dataclasses: compile them once
