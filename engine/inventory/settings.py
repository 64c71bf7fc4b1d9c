"""From a job file's `[inventory]` table to `InventorySettings`.

`engine.jobfile` validates the table and fills its defaults (kind, host, port,
protocol, verify_tls, user or None, password_env or None, timeout in seconds; for
Hyper-V auth, ca_file (an absolute path) and allow_insecure);
this only maps that plain dict onto the dataclass the backends take. The table
never holds a password (the job file refuses a `password` key): only the name of
the environment variable that does.
"""

from __future__ import annotations

from typing import Any

from engine.inventory.base import InventorySettings

_DEFAULT_TIMEOUT = 30.0


def settings_from_job(d: dict[str, Any]) -> InventorySettings:
    """`JobSpec.inventory` (a validated dict) -> InventorySettings.

    Missing or None values take the settings' defaults, so a hand-made dict with
    only kind and host works too. Raises ValueError for a kind, protocol or
    timeout the settings refuse (never for a table `load_job` accepted).
    """
    if not isinstance(d, dict):
        raise ValueError(f"[inventory] must be a table, not {type(d).__name__}")
    missing = [k for k in ("kind", "host") if not d.get(k)]
    if missing:
        raise ValueError(f"[inventory] needs {' and '.join(missing)}")
    port = d.get("port")
    timeout = d.get("timeout")
    return InventorySettings(
        kind=str(d["kind"]),
        host=str(d["host"]),
        port=int(port) if port is not None else None,
        verify_tls=bool(d.get("verify_tls", True)),
        user=str(d.get("user") or ""),
        password_env=str(d.get("password_env") or ""),
        timeout=float(timeout) if timeout is not None else _DEFAULT_TIMEOUT,
        protocol=str(d.get("protocol") or ""),
        auth=str(d.get("auth") or ""),
        ca_file=str(d.get("ca_file") or ""),
        allow_insecure=bool(d.get("allow_insecure", False)),
    )


__all__ = ["settings_from_job"]
