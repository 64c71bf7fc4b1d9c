"""Which machines a vCenter/ESXi or Hyper-V host has (issue 6).

Callers use only these names; the backends (`vsphere`, `hyperv`) are imported
lazily so that a copy job without an `[inventory]` table never loads pyvmomi
or pywinrm.
"""

from engine.inventory.base import (
    InventoryError,
    InventoryResult,
    InventorySettings,
    VmDisk,
    VmInfo,
    inventory_json,
    list_machines,
    lookup,
    match_machines,
)

__all__ = [
    "InventoryError",
    "InventoryResult",
    "InventorySettings",
    "VmDisk",
    "VmInfo",
    "inventory_json",
    "list_machines",
    "lookup",
    "match_machines",
]
