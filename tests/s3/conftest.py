"""A real single-node Ceph cluster with its RADOS gateway, one per test session."""

from __future__ import annotations

import os
import uuid

import pytest

from . import cephlab


@pytest.fixture(scope="session")
def ceph(tmp_path_factory):
    missing = cephlab.missing_binaries()
    if missing:
        pytest.skip(f"ceph binaries not installed: {', '.join(missing)} "
                    f"(apt-get install ceph-mon ceph-osd radosgw ceph-common)")
    cephlab.become_subreaper()
    info = cephlab.up()
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                                            "AWS_SECRET_ACCESS_KEY", "FERRY_STATE_DIR")}
    os.environ.update(AWS_ENDPOINT_URL=info["S3_ENDPOINT"], AWS_ACCESS_KEY_ID=info["S3_ACCESS_KEY"],
                      AWS_SECRET_ACCESS_KEY=info["S3_SECRET_KEY"],
                      FERRY_STATE_DIR=str(tmp_path_factory.mktemp("ferry-state")))
    try:
        yield info
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cephlab.down(info)


@pytest.fixture(scope="session")
def s3(ceph):
    """A plain boto3 client on the cluster (for the tests' own looks at the bucket)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=ceph["S3_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=ceph["S3_ACCESS_KEY"],
                        aws_secret_access_key=ceph["S3_SECRET_KEY"],
                        config=Config(s3={"addressing_style": "path"}))


@pytest.fixture
def bucket(s3) -> str:
    name = "t-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def lock_bucket(s3) -> str:
    name = "l-" + uuid.uuid4().hex[:12]
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name
