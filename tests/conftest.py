"""Session-wide test hygiene."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from engine.repository.immutable import is_immutable, set_immutable


@pytest.fixture(scope="session", autouse=True)
def _lift_immutable_attributes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests run as root set the immutable attribute on real files (hardened folder
    targets); lifted once the session ends, or pytest's temp folders pile up files that
    nobody but root's `chattr -i` can delete."""
    yield
    if os.geteuid() != 0:
        return
    for folder, _, names in os.walk(tmp_path_factory.getbasetemp()):
        for name in names:
            path = tmp_path_factory.getbasetemp().joinpath(folder, name)
            if not path.is_symlink() and is_immutable(path):
                set_immutable(path, False)
