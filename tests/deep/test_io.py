"""deep.io: atomic writes, tolerant readers, quarantine, the output lock."""
from __future__ import annotations

import json
import logging
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from deep import io as dio


def test_write_json_format_is_the_packages_one_format(tmp_path):
    path = tmp_path / "sub" / "a.json"
    dio.write_json(path, {"b": 1, "a": [1.5, None], "c": np.float32(0.5), "p": Path("x/y")})
    assert path.read_text() == '{\n  "a": [\n    1.5,\n    null\n  ],\n  "b": 1,\n  "c": 0.5,\n  "p": "x/y"\n}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert dio.read_json(path) == {"a": [1.5, None], "b": 1, "c": 0.5, "p": "x/y"}
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no temporary left behind


def test_write_json_refuses_nan_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.json"
    dio.write_json(path, {"x": 1})
    with pytest.raises(ValueError, match=r"a\.json.*non-finite"):
        dio.write_json(path, {"x": float("nan")})
    assert dio.read_json(path) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_write_failure_leaves_the_old_file(tmp_path):
    path = tmp_path / "f.bin"
    dio.write_bytes(path, b"old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        dio.atomic_write(path, boom)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_save_npz_and_torch_round_trip(tmp_path):
    dio.save_npz(tmp_path / "a.npz", x=np.arange(3, dtype=np.float32), y=np.array([1, 2], dtype=np.int64))
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert z["x"].tolist() == [0.0, 1.0, 2.0] and z["y"].dtype == np.int64
    dio.save_npz_compressed(tmp_path / "c.npz", x=np.zeros(100))
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert z["x"].sum() == 0
    dio.save_torch(tmp_path / "m.pt", {"w": torch.arange(4), "epoch": torch.tensor(3)})
    state = torch.load(tmp_path / "m.pt", weights_only=True)
    assert state["w"].tolist() == [0, 1, 2, 3] and int(state["epoch"]) == 3


@pytest.mark.parametrize("content, what", [(b"", "empty"), (b'{"a": 1', "line 1 column 8"),
                                           (b"\xff\xfe", "UTF-8")])
def test_read_json_names_the_file_and_the_damage(tmp_path, content, what):
    path = tmp_path / "metrics.json"
    path.write_bytes(content)
    with pytest.raises(dio.CorruptFileError, match="metrics.json") as e:
        dio.read_json(path)
    assert what in str(e.value)
    assert isinstance(e.value, ValueError)


def test_read_json_missing_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        dio.read_json(tmp_path / "nope.json")
    with pytest.raises(dio.CorruptFileError, match="is a folder"):
        dio.read_json(tmp_path)


def test_read_jsonl_drops_a_torn_last_line_with_a_warning(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text('{"epoch": 1}\n\n{"epoch": 2}\n{"epoch": 3, "lo')
    with caplog.at_level(logging.WARNING, logger="deep.io"):
        assert dio.read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]
    assert "log.jsonl" in caplog.text and "torn" in caplog.text


def test_read_jsonl_refuses_a_bad_middle_line(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"epoch": 1}\n[1, 2]\n{"epoch": 3}\n')
    with pytest.raises(dio.CorruptFileError, match=r"log\.jsonl: line 2: expected a JSON object"):
        dio.read_jsonl(path)


def test_append_jsonl_cuts_a_torn_tail_first(tmp_path):
    path = tmp_path / "log.jsonl"
    dio.append_jsonl(path, {"epoch": 1, "a": 0.5})
    with open(path, "a") as f:
        f.write('{"epoch": 2, "a"')
    dio.append_jsonl(path, {"epoch": 2, "a": 0.25})
    assert path.read_text() == '{"a": 0.5, "epoch": 1}\n{"a": 0.25, "epoch": 2}\n'
    path.write_text('{"epoch": 1}')  # complete but without its newline: kept
    dio.append_jsonl(path, {"epoch": 2})
    assert dio.read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}]


def test_quarantine_moves_aside_never_deletes(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("{")
    first = dio.quarantine(path)
    assert re.fullmatch(r"metrics\.json\.corrupt-\d{8}T\d{6}", first.name) and first.read_text() == "{"
    path.write_text("[")
    second = dio.quarantine(path)
    assert second != first and second.read_text() == "[" and not path.exists()


def test_output_lock_refuses_a_second_process_and_names_the_holder(tmp_path):
    out = tmp_path / "run"
    code = textwrap.dedent(f"""
        from deep.io import output_lock, OutputLockedError
        try:
            with output_lock({str(out)!r}, "second"):
                print("ENTERED")
        except OutputLockedError as e:
            print("REFUSED", e)
    """)
    with dio.output_lock(out, "deep train --out run"):
        holder = json.loads((out / dio.LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["command"] == "deep train --out run"
        with dio.output_lock(out, "nested"):  # the same process may nest
            pass
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert res.stdout.startswith("REFUSED")
        assert f"pid {os.getpid()}" in res.stdout and "deep train --out run" in res.stdout
    assert not (out / dio.LOCK_NAME).exists()
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "ENTERED"


def test_output_lock_takes_over_a_lock_left_by_a_dead_process(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    import socket
    (out / dio.LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                                 "command": "old", "since": 0}))
    with caplog.at_level(logging.WARNING, logger="deep.io"), dio.output_lock(out, "new"):
        assert json.loads((out / dio.LOCK_NAME).read_text())["command"] == "new"
    assert "taking over" in caplog.text


def test_output_lock_takes_over_a_record_left_on_another_host_but_refuses_a_file(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / dio.LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1, "command": "x", "since": 0}))
    with caplog.at_level(logging.WARNING, logger="deep.io"), dio.output_lock(out, "new"):
        pass  # nobody holds the flock: the node that wrote the record was killed
    assert "host elsewhere" in caplog.text
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="existing file"):
        with dio.output_lock(tmp_path / "file", "new"):
            pass


class _Evil:
    def __reduce__(self):
        return (os.getpid, ())


def test_load_torch_refuses_pickles_and_names_damage(tmp_path):
    dio.save_torch(tmp_path / "ok.pt", [torch.arange(3)])
    assert dio.load_torch(tmp_path / "ok.pt")[0].tolist() == [0, 1, 2]
    torch.save({"x": _Evil()}, tmp_path / "evil.pt")
    with pytest.raises(dio.CorruptFileError, match=r"refused .*evil\.pt") as e:
        dio.load_torch(tmp_path / "evil.pt")
    assert "weights_only" not in str(e.value)
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(dio.CorruptFileError, match=r"corrupt or truncated file .*cut\.pt"):
        dio.load_torch(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        dio.load_torch(tmp_path / "nope.pt")
