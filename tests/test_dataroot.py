from pathlib import Path

from deep.dataroot import ENV_VAR, default_data_root, resolve_data_root


def test_explicit_beats_env(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, "/from/env")
    assert resolve_data_root(tmp_path) == tmp_path


def test_env_beats_default(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "/from/env")
    assert resolve_data_root(None) == Path("/from/env")


def test_default_is_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert resolve_data_root() == tmp_path / "advfeat" / "data" == default_data_root()
