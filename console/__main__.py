"""`python -m console [--jobs DIR]`: the console (used by `ferry serve` and tmux tests)."""

from __future__ import annotations

import sys

from console.entry import run_console

if __name__ == "__main__":
    sys.exit(run_console(sys.argv[1:]))
