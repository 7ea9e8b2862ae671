"""The embedded (single-machine) Ray instance: loopback only, private, quiet, normal priority.

``python -m ray_jobs run`` without ``--address`` starts Ray inside the driver. Left to its defaults
Ray 2.60 would, on Linux:

* advertise the machine's outward IP and bind the GCS, raylet, object manager, worker and driver
  gRPC servers and the Prometheus metrics endpoint to all interfaces (``0.0.0.0``/``::``);
* find that IP by opening a UDP socket towards a public DNS server;
* keep its session folders under ``/tmp/ray`` with mode 0777;
* start its workers at niceness 15, so a grid starves whenever anything else runs on the machine.

:func:`start_embedded` avoids each of these:

* Ray resolves a node address of ``127.0.0.1`` to the outward IP unless its "no cluster" switch
  (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the default on macOS/Windows) is off. With it off, the
  node address stays ``127.0.0.1``; every gRPC server then binds to loopback only, and the metrics
  agent exports on loopback (Ray binds it to localhost when the node address is local). No IP
  lookup, so no packet to a public DNS server.
* ``RAY_USAGE_STATS_ENABLED=0``: no usage report and none of the cloud-metadata requests
  (``169.254.169.254``, ``metadata.google.internal``) that its cloud detection makes.
* Ray's temp dir is ``t`` inside :func:`private_temp_dir` (``$XDG_CACHE_HOME/advfeat/ray``, else
  ``~/.cache/advfeat/ray``; ``/tmp/advfeat-ray-<uid>`` when that path is too long for the unix
  sockets Ray puts under it), a folder of ours with mode 0700 that Ray never touches: Ray makes its
  own folders 0777 (and re-opens its temp dir to 0777 each time a worker starts), so the 0700
  folder around it is what keeps other users out. After start the folders Ray made are also set to
  0755 (best effort; a worker starting later re-opens the top one behind the 0700 folder).
* ``worker_niceness = 0`` (Ray's system config) runs the workers at the driver's priority.

The cluster path (``--address``) changes none of this: a cluster's nodes must bind their real
interfaces, and Ray's token authentication (on by default in this Ray: it logs "Token authentication
is enabled") stays on; docs/ray.md lists the ports to firewall.
"""
from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Any, Iterator

LOOPBACK = "127.0.0.1"
# AF_UNIX paths are limited to 107 bytes; Ray appends "/t/session_<date>_<time>_<usec>_<pid>/sockets/
# plasma_store" (about 65 characters) to the private dir.
MAX_TEMP_DIR_CHARS = 36
RAY_SUBDIR = "t"  # Ray's own temp dir, inside the private one
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep a 127.0.0.1 node address as given (see above)
}
SYSTEM_CONFIG = {"worker_niceness": 0}


def private_temp_dir() -> Path:
    """The embedded Ray's temp dir, created with mode 0700 (and set to 0700 if it existed)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "advfeat" / "ray"
    if len(str(path)) > MAX_TEMP_DIR_CHARS:
        path = Path(f"/tmp/advfeat-ray-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_uid != os.getuid():
        raise PermissionError(f"Ray temp dir {path} belongs to another user; remove it or set XDG_CACHE_HOME")
    path.chmod(0o700)
    return path


def restrict_modes(root: Path) -> None:
    """``root`` and every folder below it 0755 (Ray creates them 0777). Files keep their modes."""
    root.chmod(0o755)
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = Path(dirpath) / name
            with contextlib.suppress(OSError):  # a folder Ray removed meanwhile
                if not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) != 0o755:
                    path.chmod(0o755)


@contextlib.contextmanager
def _quiet_loopback() -> Iterator[None]:
    """Within ``ray.init``: :data:`QUIET_ENV` in the environment (the processes Ray starts inherit it)
    and Ray's switch that keeps a local node address local. That switch is a constant read when ray is
    imported, so an already-imported ray is switched for the duration of the call. Both are restored
    afterwards, so a later ``ray start`` or cluster connection from this process is unaffected."""
    from ray._private import ray_constants

    saved_env = {key: os.environ.get(key) for key in QUIET_ENV}
    saved_switch = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.update(QUIET_ENV)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_switch
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_embedded(num_cpus: int, runtime_env: dict[str, Any]) -> Path:
    """Start a local Ray on loopback with a private temp dir; returns Ray's temp dir."""
    import ray

    temp_dir = private_temp_dir() / RAY_SUBDIR
    with _quiet_loopback():
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env, log_to_driver=True,
                 _node_ip_address=LOOPBACK, _temp_dir=str(temp_dir), _system_config=dict(SYSTEM_CONFIG))
    restrict_modes(temp_dir)
    return temp_dir
