"""Fixtures of the object-store tests: moto's S3 server (one per module, started on 127.0.0.1 as a
subprocess, with fake credentials) and a fresh bucket for each test."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from _objstore_s3 import FAKE_ENV, free_port


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1; the endpoint and fake credentials go into os.environ (Ray
    workers started in this module inherit them)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.1)
    env = {**FAKE_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield f"http://127.0.0.1:{port}"
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
