"""One JSON style for every `--json` output (CONTRACT: stable keys, RFC 3339 times)."""

from __future__ import annotations

import json
import sys
from typing import Any


def line(obj: Any) -> str:
    """One object on one line (streamed output: one message per line, like restic --json)."""
    return json.dumps(obj, separators=(",", ":"))


def emit(obj: Any) -> None:
    """Print `obj` as JSON on stdout, indented by one space like every other `--json`."""
    json.dump(obj, sys.stdout, indent=1)
    sys.stdout.write("\n")
