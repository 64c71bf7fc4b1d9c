"""A frame's JSON payload must be an object: anything else is refused as malformed, and an
ERROR frame carrying one still becomes a plain stream error (no AttributeError)."""

from __future__ import annotations

import pytest

from engine.copy import transport as t


def test_frame_json_object_is_returned() -> None:
    assert t.Frame(t.HELLO, b'{"version": 1}').json() == {"version": 1}


@pytest.mark.parametrize("payload", [b"[1, 2]", b'"text"', b"3"])
def test_frame_json_non_object_is_refused(payload: bytes) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        t.Frame(t.HELLO, payload).json()


def test_error_frame_with_non_object_payload_is_a_stream_error() -> None:
    err = t.error_of(t.Frame(t.ERROR, b"[1]"))
    assert isinstance(err, t.StreamError) and str(err) == "target mover failed"
