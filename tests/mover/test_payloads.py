"""The answers a source reads from a target, parsed field by field (engine.copy.payloads):
each well-formed answer survives to_json -> parse unchanged; each broken one is refused
with the frame and the field named."""

from __future__ import annotations

import pytest

from engine.copy import payloads as pl
from engine.copy.transport import PROTOCOL_VERSION, StreamError

DAMAGE = {"file": "a.fib", "point": "0123456789abcdef", "disk": "d0", "block": 3,
          "digest": "00" * 16, "raw": 4096, "reason": "digest mismatch"}


@pytest.mark.parametrize("answer", [
    pl.HelloReply(PROTOCOL_VERSION, True),
    pl.Done("0123456789abcdef", "x.fib", 10, 5, 1, 2, 0.5),
    pl.RetainAnswer([pl.ActionDone("merge", "0123456789abcdef", "oldest increment")],
                    refused="append-only"),
    pl.RetainAnswer(damaged=[DAMAGE], message="1 stored block(s) damaged"),
    pl.RetainAnswer([pl.ActionDone("delete-chain", "a,b", "expired", machine="web01")]),
    pl.CheckAnswer([pl.Corrupt("d0", 3, "a.fib", "digest mismatch")], [DAMAGE], ["meta"]),
    pl.RepairAnswer(1, [DAMAGE]),
])
def test_answers_round_trip(answer):
    assert type(answer).parse(answer.to_json()) == answer


@pytest.mark.parametrize("cls,obj,match", [
    (pl.HelloReply, {"version": PROTOCOL_VERSION + 1}, "speaks protocol"),
    (pl.HelloReply, {}, "speaks protocol None"),
    (pl.Done, {"point": "0123456789abcdef", "file": "x", "size": 1, "written": True},
     "written is not a count"),
    (pl.Done, {"point": "0123456789abcdef", "file": "x" * 300, "size": 1, "written": 1},
     "file is not a text"),
    (pl.Done, {"point": "0123456789abcdef", "file": "x", "size": 1, "written": 1,
               "busy": float("inf")}, "busy is not a duration"),
    (pl.RetainAnswer, {"actions": "merge"}, "actions is not a list"),
    (pl.RetainAnswer, {"actions": [["merge"]]}, "an action is not an object"),
    (pl.RetainAnswer, {"actions": [{"point": "x"}]}, "action is not a text"),
    (pl.RetainAnswer, {"actions": [{"action": "merge", "detail": "x" * 5000}]},
     "detail is not a text"),
    (pl.RetainAnswer, {"refused": 1}, "refused is not a text"),
    (pl.RetainAnswer, {"damaged": [{**DAMAGE, "digest": "zz"}]}, "a digest is not hex"),
    (pl.RetainAnswer, {"damaged": [{**DAMAGE, "block": -1}]}, "block is not a count"),
    (pl.CheckAnswer, {"corrupt": [["d0", 3, "a.fib"]]}, r"is not \[disk, block, file, reason\]"),
    (pl.CheckAnswer, {"corrupt": [], "errors": [1]}, "errors are not texts"),
    (pl.RepairAnswer, {"fixed": "1"}, "fixed is not a count"),
])
def test_broken_answers_are_refused_with_the_field_named(cls, obj, match):
    with pytest.raises(pl.BadAnswer, match=match) as caught:
        cls.parse(obj)
    assert isinstance(caught.value, StreamError)  # the task fails like any stream fault


def test_answers_are_bounded():
    many = {"actions": [{"action": "merge"}] * (pl.MAX_ACTIONS + 1)}
    with pytest.raises(pl.BadAnswer, match="up to 100000"):
        pl.RetainAnswer.parse(many)


def test_an_action_record_leaves_machine_to_the_caller():
    assert pl.ActionDone("merge", "p", "d").to_json() == {"action": "merge", "point": "p",
                                                          "detail": "d"}
