"""The file-system immutable attribute on a folder target's backup files (hardening).

With `[storage] immutable_days`, a point's backup file gets the immutable attribute
(`FS_IOC_SETFLAGS` with `FS_IMMUTABLE_FL`, what `chattr +i` sets) until the point's
`immutable_until`, or a later one's of its chain that reads it: nothing - no process of the backup user, no `rm -rf` - can change,
rename or delete it until root lifts it. Ferry lifts it only once the time passed
(checked against the wall clock at the start of each retention pass, before any
transform) and sets it at the end of the pass, after the run's own transforms (a GFS
synthesis replaces the new point's increment). Needs root (CAP_LINUX_IMMUTABLE) and a
file system that has the flag (ext4, xfs, btrfs, tmpfs on Linux >= 6.0); elsewhere the
retention rule alone holds the points, and the pass logs once why.
"""

from __future__ import annotations

import array
import fcntl
import logging
import os
from datetime import datetime
from pathlib import Path

from engine.model import Kind, MachineMeta

log = logging.getLogger("ferry.immutable")
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_IMMUTABLE_FL = 0x00000010


def _flags(path: Path, on: bool | None) -> int | None:
    """The file's attribute flags (None: this system cannot tell); with `on` given, the
    immutable attribute set or cleared first (None when that fails: not root, ...)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buf = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        flags = buf[0]
        if on is not None:
            flags = flags | FS_IMMUTABLE_FL if on else flags & ~FS_IMMUTABLE_FL
            if flags != buf[0]:
                fcntl.ioctl(fd, FS_IOC_SETFLAGS, array.array("i", [flags]), False)
        return flags
    except OSError:
        return None
    finally:
        os.close(fd)


def set_immutable(path: Path, on: bool) -> bool:
    """Set or clear the attribute; False when this system cannot (not root, no support)."""
    return _flags(path, on) is not None


def is_immutable(path: Path) -> bool:
    flags = _flags(path, None)
    return flags is not None and bool(flags & FS_IMMUTABLE_FL)


def _until(meta: MachineMeta) -> dict[str, datetime]:
    """Point id -> until when its files must hold: its own `immutable_until`, or later
    while a later point of its forward chain (up to the next full) still is immutable,
    since that point reads them (a locked increment over a deletable full would be
    lost with it; S3 locks a manifest as long as the newest point reading it, alike)."""
    raw = meta.facts.get("immutable_until")
    own = {}
    for pid, text in (raw.items() if isinstance(raw, dict) else ()):
        try:
            own[str(pid)] = _aware(datetime.fromisoformat(str(text)))
        except ValueError:
            continue
    out: dict[str, datetime] = {}
    held: datetime | None = None
    for p in reversed(meta.points):
        mine = own.get(p.id)
        if mine is not None and (held is None or mine > held):
            held = mine
        if held is not None:
            out[p.id] = held
        if p.kind == Kind.FULL:  # an older chain reads nothing of this one
            held = None
    return out


def _files(meta: MachineMeta) -> dict[str, set[str]]:
    """file name -> ids of the points stored in it (a merged full holds one point)."""
    out: dict[str, set[str]] = {}
    for p in meta.points:
        out.setdefault(p.file, set()).add(p.id)
    return out


def lift_expired(folder: Path, meta: MachineMeta) -> int:
    """Clear the attribute of every file whose points' immutability has passed (wall
    clock) or that no longer records one; before retention transforms. Files lifted."""
    until, now = _until(meta), wall_now()
    n = 0
    for name, ids in _files(meta).items():
        ends = [until[i] for i in ids if i in until]
        if not ends or all(_aware(e) <= now for e in ends):
            path = folder / name
            if is_immutable(path) and set_immutable(path, False):
                n += 1
    return n


def hold(folder: Path, meta: MachineMeta) -> int:
    """Set the attribute on every file whose points are still immutable; after the
    retention pass. Files set (0 with a log line when the system cannot)."""
    until, now = _until(meta), wall_now()
    n = 0
    for name, ids in _files(meta).items():
        if any(_aware(until[i]) > now for i in ids if i in until):
            path = folder / name
            if not is_immutable(path):
                if not set_immutable(path, True):
                    log.info("%s: cannot set the immutable attribute (needs root and "
                             "ext4/xfs/btrfs); the retention rule alone holds the points",
                             folder)
                    return n
                n += 1
    return n


def immutable_now(meta: MachineMeta, point_id: str) -> bool:
    """The point is still immutable by the wall clock (compact must leave it)."""
    end = _until(meta).get(point_id)
    return end is not None and _aware(end) > wall_now()


def wall_now() -> datetime:
    return datetime.now().astimezone()


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.astimezone()
