"""`facts.immutable_until` of a chain: kept as a table, a hostile value refused in one line."""

import pytest

from engine.model import MachineMeta, Method
from engine.objstore.locks import lock_facts
from engine.repository.metadata import MetadataError


def _meta(**facts: object) -> MachineMeta:
    return MachineMeta("job", "vm1", 1 << 20, Method.FOREVER_FORWARD, "zstd", facts=dict(facts))


def test_created_empty_and_kept() -> None:
    meta = _meta()
    lock_facts(meta)["p1"] = "2030-01-01T00:00:00+00:00"
    assert meta.facts["immutable_until"] == {"p1": "2030-01-01T00:00:00+00:00"}
    assert lock_facts(meta)["p1"] == "2030-01-01T00:00:00+00:00"


def test_not_a_table_is_refused() -> None:
    with pytest.raises(MetadataError, match="immutable_until is not a table"):
        lock_facts(_meta(immutable_until=5))
