"""The chain key id of a BEGIN (engine.copy.receive.point_key): absent or null is plaintext,
anything else must be a key id."""

from __future__ import annotations

import pytest

from engine.copy import transport as t
from engine.copy.receive import point_key
from engine.model import Kind


@pytest.mark.parametrize("begin", [{}, {"key": ""}, {"key": None}])
def test_no_key_is_plaintext(begin: dict[str, object]) -> None:
    assert point_key(None, begin, Kind.FULL) == ""


@pytest.mark.parametrize("key", ["not a key", 7, ["k"], {"k": 1}])
def test_a_bad_key_id_is_refused(key: object) -> None:
    with pytest.raises(t.StreamError, match="bad chain key id"):
        point_key(None, {"key": key}, Kind.FULL)
