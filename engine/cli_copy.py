"""`ferry` sub-commands of the backup copy job: run, preview, history, daemon, ..."""

from __future__ import annotations

import argparse
from collections.abc import Callable

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def add_commands(sub, time_type, size_type) -> None:
    """Register the copy-job commands on the main parser's sub-parsers."""
