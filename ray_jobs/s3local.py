"""A local S3-compatible server (moto) on 127.0.0.1, for the object-store tests, the overhead benchmark
and the multi-node demo: nothing here talks to a real cloud.

``start_moto()`` starts ``python -m moto.server`` on a free loopback port as a subprocess and returns it
with its endpoint once it accepts connections. The clients need ``FAKE_CREDENTIALS`` and
``AWS_ENDPOINT_URL=<endpoint>`` in their environment (:func:`client_env`).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from typing import IO

FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client_env(endpoint: str) -> dict[str, str]:
    """The environment an S3 client (s3fs, boto3) needs to use the local server."""
    return {**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}


def start_moto(port: int | None = None, *, log: IO | None = None, env: dict[str, str] | None = None,
               timeout_s: float = 60.0) -> tuple[subprocess.Popen, str]:
    """moto's S3 server on 127.0.0.1 (its output to ``log``, else discarded) and its endpoint URL;
    RuntimeError (the server killed) when it does not accept connections within ``timeout_s``."""
    port = free_port() if port is None else port
    out = log if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
                            stdout=out, stderr=out, env=env)
    deadline = time.time() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError(f"moto S3 server did not start on 127.0.0.1:{port}") from None
            time.sleep(0.1)
