"""The what-if sizing model of `ferry preview` (the community Restore Point Simulator's).

A full and an increment have fixed sizes on the target (from the real chains or from
what the admin types); the work space is what must stay free for merges and
synthetic fulls. Split from `engine.simulate`, which re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass

TIB = 1024**4
# RPS work-space buckets over the full size: (upper bound of the bucket, share kept free)
WORK_SPACE_BUCKETS: tuple[tuple[float, float], ...] = (
    (10 * TIB, 1.05), (20 * TIB, 0.66), (100 * TIB, 0.40), (500 * TIB, 0.25),
    (float("inf"), 0.10),
)


@dataclass
class Sizing:
    """Bytes of one full and one increment on the target."""

    full: int
    incremental: int


@dataclass(frozen=True)
class SizingModel:
    """The what-if sizing model without real data (CONTRACT `ferry preview --used --change
    --reduction`, the console's what-if form): what the admin types, kept as typed."""

    used: int = 100 * 1024**3
    change_pct: float = 5.0
    reduction_pct: float = 50.0

    def sizes(self) -> Sizing:
        """The RPS model: full = used x reduction, increment = used x change x reduction.

        Percentages as the user types them (50 -> 0.5); `reduction` is the data left
        after compression and dedup (RPS default 50%), `change` the change per run (10%).
        """
        used, change, reduction = self.used, self.change_pct, self.reduction_pct
        if used < 0 or not 0 <= change <= 100 or not 0 < reduction <= 100:
            raise ValueError("sizing needs used >= 0, 0 <= change <= 100 and 0 < reduction <= 100")
        return Sizing(full=round(used * reduction / 100),
                      incremental=round(used * change / 100 * reduction / 100))


def sizing_from_model(used: int, change_pct: float, reduction_pct: float) -> Sizing:
    """`SizingModel(used, change_pct, reduction_pct).sizes()`."""
    return SizingModel(used, change_pct, reduction_pct).sizes()


def work_space(full_size: int) -> int:
    """Free space to keep for merges and synthetic fulls (RPS buckets over the full size)."""
    total, low = 0.0, 0.0
    for high, share in WORK_SPACE_BUCKETS:
        if full_size <= low:
            break
        total += (min(full_size, high) - low) * share
        low = high
    return round(total)
