"""The S3 client's connections ACK at once (TCP_QUICKACK), on the real gateway.

RGW writes a response's headers and body apart with Nagle on: with delayed ACKs a
small GET waited ~40 ms for nothing. The test checks that every connection the
client actually used is the quick-ACK one and that its GETs still return the bytes.
"""

from __future__ import annotations

import socket

import pytest

from engine.objstore.location import parse_s3_url
from engine.objstore.store import Bucket

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux only")


def test_small_requests_go_through_quick_ack_connections(bucket):
    b = Bucket(parse_s3_url(f"s3://{bucket}/q"))
    b.put("q/small", b"x" * 100, checksum=True)
    for _ in range(3):
        assert b.get("q/small", 1000) == b"x" * 100
    assert [k for k, _ in b.list("q/")] == ["q/small"]
    manager = b._c._endpoint.http_session._manager
    pools = [manager.pools[k] for k in manager.pools.keys()]
    assert pools, "no connection pool was used"
    for pool in pools:
        assert pool.ConnectionCls.__name__.startswith("QuickAck")
        assert pool.ConnectionCls.getresponse is not pool.ConnectionCls.__mro__[1].getresponse
