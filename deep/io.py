"""Files on disk, written whole or not at all, and read back tolerantly (issue 13; DESIGN §deep.io).

The one place in the package that writes result files. Every writer goes through
:func:`atomic_write`: the bytes go to a temporary file in the destination's folder, are fsynced, and
the file is moved into place with ``os.replace`` (atomic on POSIX), then the folder is fsynced so the
rename survives a power cut. A reader therefore sees the old file or the new one, never half of one.

Formats written here:

* JSON (:func:`write_json`): ``json.dumps(obj, indent=2, sort_keys=True) + "\\n"``, ASCII, NaN and
  infinities refused. Every JSON file of a run folder, a constructed dataset and a CLI output uses it.
* JSON lines (:func:`append_jsonl`): one ``json.dumps(obj, sort_keys=True)`` per line, appended and
  fsynced. A crash can leave a torn last line; :func:`read_jsonl` drops it with a warning naming the file.
* npz (:func:`save_npz`) and torch checkpoints (:func:`save_torch`), both through the same helper.

A file that cannot be decoded raises :class:`CorruptFileError` (a ValueError naming the file and what is
wrong). Callers that can rebuild it move it aside with :func:`quarantine` (``<name>.corrupt-<UTC time>``);
nothing is ever deleted. :func:`output_lock` keeps a second writer out of an output folder.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

log = logging.getLogger(__name__)

FILE_MODE = 0o644
DIR_MODE = 0o755
LOCK_NAME = ".advfeat.lock"


class CorruptFileError(ValueError):
    """A file exists but cannot be decoded; the message names the file and what is wrong."""


class OutputLockedError(RuntimeError):
    """Another live process writes into the same output folder; the message names it."""


PathLike = str | os.PathLike[str]


# ------------------------------------------------------------------------------------------ writing
def _fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable; some filesystems refuse to fsync a folder, which is harmless."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None], *, mode: int = FILE_MODE) -> None:
    """Create or replace `path` with what `write(fileobj)` writes, atomically (see the module docstring).

    Missing parent folders are created (mode 0755); the file gets `mode` (default 0644) whatever the umask
    of mkstemp. On any error the temporary file is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def _plain(obj: Any) -> Any:
    """numpy / torch scalars and arrays (anything with ``.tolist()``) and paths as plain JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def json_text(obj: Any, *, allow_nan: bool = False) -> str:
    """The package's one JSON formatting: 2-space indent, sorted keys, ASCII, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=allow_nan, default=_plain) + "\n"


def write_json(path: PathLike, obj: Any, *, allow_nan: bool = False) -> None:
    """Atomically write `obj` as JSON (:func:`json_text`); NaN/inf raise ValueError naming the file
    unless `allow_nan` (results are validated, and a NaN accuracy is a bug to surface, not to store)."""
    try:
        text = json_text(obj, allow_nan=allow_nan)
    except ValueError as e:
        raise ValueError(f"refusing to write {path}: {e} (non-finite numbers are not valid JSON)") from e
    write_bytes(path, text.encode("ascii"))


def save_npz(path: PathLike, **arrays: Any) -> None:
    """Atomically write an uncompressed ``.npz`` (np.savez) of the named arrays."""
    import numpy as np

    atomic_write(path, lambda f: np.savez(f, **arrays))


def save_npz_compressed(path: PathLike, **arrays: Any) -> None:
    """Atomically write a compressed ``.npz`` (np.savez_compressed) of the named arrays."""
    import numpy as np

    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def save_torch(path: PathLike, obj: Any) -> None:
    """Atomically torch.save `obj` (callers keep it tensors-only, so weights_only=True loads it)."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


# ------------------------------------------------------------------------------------------ reading
def load_torch(path: PathLike, map_location: Any = "cpu") -> Any:
    """torch.load(weights_only=True): tensors and plain containers only, so no code in the file runs.

    FileNotFoundError if missing; CorruptFileError naming the file if it is truncated or damaged, or if
    it holds other Python objects (refused, without relaying torch's advice to load it unsafely)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise CorruptFileError(f"refused {path}: it holds Python objects other than tensors, so it was not "
                                   f"loaded (possibly malicious, or not written by this package)") from None
        raise CorruptFileError(f"corrupt or truncated file {path}: {e}") from e
    except Exception as e:  # torch raises RuntimeError/EOFError/KeyError/... for broken files
        first = str(e).splitlines()[0] if str(e) else ""
        raise CorruptFileError(f"corrupt or truncated file {path}: {type(e).__name__}: {first}") from e


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise CorruptFileError(f"{path} is a folder, expected a file")
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFileError(f"corrupt file {path}: not UTF-8 text ({e})") from e


def read_json(path: PathLike) -> Any:
    """The decoded JSON value of `path`; FileNotFoundError if missing, CorruptFileError (naming the file,
    the line and column) if empty, truncated or not JSON."""
    path = Path(path)
    text = _read_text(path)
    if not text.strip():
        raise CorruptFileError(f"corrupt JSON file {path}: the file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CorruptFileError(f"corrupt JSON file {path}: {e.msg} at line {e.lineno} column {e.colno}") from e


def _parse_line(line: str) -> dict[str, Any]:
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def read_jsonl(path: PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per non-blank line.

    A last line that does not decode is the torn tail of an interrupted append: it is dropped with a
    warning naming the file. A bad line before the last means real damage: CorruptFileError."""
    path = Path(path)
    if path.is_dir():
        raise CorruptFileError(f"{path} is a folder, expected a JSON-lines file")
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    lines = [(i + 1, raw) for i, raw in enumerate(path.read_bytes().split(b"\n")) if raw.strip()]
    out: list[dict[str, Any]] = []
    for k, (lineno, raw) in enumerate(lines):
        try:
            out.append(_parse_line(raw.decode("utf-8")))
        except (ValueError, UnicodeDecodeError) as e:
            if k == len(lines) - 1:
                log.warning("%s: dropped a torn last line %d (%s)", path, lineno, e)
                break
            raise CorruptFileError(f"corrupt JSON-lines file {path}: line {lineno}: {e}") from e
    return out


def _drop_torn_tail(path: Path) -> bool:
    """Before appending: cut a last line that has no newline and does not decode (a torn append), so the
    new line does not glue onto it; True if the file now needs a newline before the next line."""
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1
    try:
        _parse_line(data[cut:].decode("utf-8"))
        return True  # a complete line that merely lacks its newline
    except (ValueError, UnicodeDecodeError):
        log.warning("%s: dropped a torn last line before appending", path)
        os.truncate(path, cut)
        return False


def json_line(obj: Any) -> str:
    """One JSON-lines record: compact, sorted keys, NaN refused, newline-terminated."""
    return json.dumps(obj, sort_keys=True, allow_nan=False, default=_plain) + "\n"


def append_jsonl(path: PathLike, obj: dict[str, Any]) -> None:
    """Append one JSON line (:func:`json_line`) and fsync; a torn tail left by a crash is cut first."""
    path = Path(path)
    line = json_line(obj)
    newline = path.is_file() and _drop_torn_tail(path)
    with open(path, "a", encoding="utf-8") as f:
        if newline:
            f.write("\n")
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def quarantine(path: PathLike) -> Path:
    """Move a broken file aside to ``<name>.corrupt-<UTC yyyymmddTHHMMSS>`` (never delete it) and return
    the new path; a second file broken in the same second gets ``-1``, ``-2``, ... appended."""
    path = Path(path)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    k = 0
    while target.exists():
        k += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{k}")
    os.replace(path, target)
    _fsync_dir(path.parent)
    log.warning("moved the damaged file %s aside to %s", path, target.name)
    return target


# ------------------------------------------------------------------------------------ output lock
_HELD: dict[Path, int] = {}  # folders this process holds, with their nesting depth


def _holder_text(holder: dict[str, Any]) -> str:
    since = holder.get("since")
    when = (_dt.datetime.fromtimestamp(since, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            if isinstance(since, (int, float)) else "an unknown time")
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
            f"({holder.get('command', '?')!s}, since {when})")


def _read_holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    try:
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (ValueError, UnicodeDecodeError):
        holder = {}
    return holder if isinstance(holder, dict) else {}


def _open_locked(lock: Path) -> int | None:
    """An fd holding the flock on the current lock file, or None if another process holds it."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the previous holder removed the file between our open and flock: retry on the new one


def _acquire(folder: Path, command: str) -> int:
    lock = folder / LOCK_NAME
    fd = _open_locked(lock)
    if fd is None:
        with open(lock, "rb") as f:
            holder = _read_holder(f.fileno())
        raise OutputLockedError(f"output folder {folder} is in use by {_holder_text(holder)}; wait for it to "
                                f"finish or use another output folder")
    old = _read_holder(fd)
    if old:  # the holder exited without cleaning up (killed): its flock went with it
        log.warning("%s: taking over the lock left by %s, which is no longer running", folder, _holder_text(old))
    record = {"host": socket.gethostname(), "pid": os.getpid(), "command": command, "since": time.time()}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode())
    os.fsync(fd)
    return fd


@contextlib.contextmanager
def output_lock(out_dir: PathLike, command: str) -> Iterator[Path]:
    """Hold the output folder `out_dir` (created if missing) for one writer while the block runs.

    The lock is an flock on ``out_dir/.advfeat.lock``, which records host, pid, command and start time.
    A second process is refused with :class:`OutputLockedError` naming the holder; a lock file left by a
    process that died is taken over (the kernel drops a dead process's flock; on NFS, flock is emulated with
    fcntl locks, which the server keeps coherent between hosts, so a retried run on another node of a
    cluster is not blocked by a killed one). Nested use in
    one process is allowed (a CLI command and the library function it calls may both take it). The lock
    file is removed on exit, so a folder the command created and left empty can be removed by the caller."""
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output folder {folder} is an existing file; give a folder path")
    folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    key = folder.resolve()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield folder
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(folder, command)
    _HELD[key] = 1
    try:
        yield folder
    finally:
        del _HELD[key]
        (folder / LOCK_NAME).unlink(missing_ok=True)  # while still holding the flock (see _open_locked)
        os.close(fd)
