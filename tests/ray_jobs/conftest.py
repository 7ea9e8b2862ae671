"""Fixtures of the object-store tests: moto's S3 server (one per module, started on 127.0.0.1 as a
subprocess, with fake credentials) and a fresh bucket for each test."""
from __future__ import annotations

import os

import pytest

from ray_jobs.s3local import client_env, start_moto


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1; the endpoint and fake credentials go into os.environ (Ray
    workers started in this module inherit them)."""
    try:
        proc, endpoint = start_moto(timeout_s=30)
    except RuntimeError as err:
        pytest.fail(str(err))
    env = client_env(endpoint)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield endpoint
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    proc.terminate()
    proc.wait(10)


_BUCKETS = iter(range(10_000))


@pytest.fixture
def uri(s3_server) -> str:
    """A fresh bucket for each test; the store is a prefix in it."""
    from ray_jobs.objstore import filesystem  # s3fs only where a bucket is made

    bucket = f"bucket-{next(_BUCKETS)}"
    filesystem("s3").mkdir(bucket)
    return f"s3://{bucket}/grid"
