"""match_machines: stable ids first, then unambiguous names."""

from __future__ import annotations

from engine.inventory.base import VmInfo, match_machines


def vm(name: str, id: str) -> VmInfo:  # noqa: A002 - mirrors the dataclass field
    return VmInfo(name=name, id=id, power_state="poweredOn")


def test_id_beats_name_when_two_vms_swap_names():
    found = [vm("a", "id-2"), vm("b", "id-1")]
    mapping, gone = match_machines({"a": "id-1", "b": "id-2"}, found)
    assert mapping["a"].id == "id-1" and mapping["a"].name == "b"
    assert mapping["b"].id == "id-2" and mapping["b"].name == "a"
    assert gone == []


def test_name_fallback_skips_vms_already_claimed_by_id():
    found = [vm("new", "id-1")]
    mapping, gone = match_machines({"old": "id-1", "new": ""}, found)
    assert mapping == {"old": found[0]}
    assert gone == ["new"]


def test_unknown_id_falls_back_to_the_name():
    found = [vm("web01", "id-9")]
    mapping, gone = match_machines({"web01": "id-1"}, found)
    assert mapping["web01"].id == "id-9" and gone == []


def test_ambiguous_names_are_not_guessed():
    found = [vm("web01", "id-1"), vm("web01", "id-2")]
    mapping, gone = match_machines({"web01": ""}, found)
    assert mapping == {} and gone == ["web01"]
    mapping, gone = match_machines({"web01": "id-2"}, found)
    assert mapping["web01"].id == "id-2" and gone == []


def test_empty_host_means_everything_is_gone():
    assert match_machines({"a": "1", "b": ""}, []) == ({}, ["a", "b"])
