"""Where the real data lives: ``--data-root``, else ``$ADVFEAT_DATA``, else a per-user default.

Every command that reads datasets resolves its root through :func:`resolve_data_root`, so the
three sources are consulted in one order everywhere.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ADVFEAT_DATA"


def default_data_root() -> Path:
    """Per-user default: ``$XDG_DATA_HOME/advfeat/data`` (``~/.local/share/advfeat/data``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "advfeat" / "data"


def resolve_data_root(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """Return the data root: the explicit value, else ``$ADVFEAT_DATA``, else the default."""
    if cli_value is not None and str(cli_value) != "":
        return Path(cli_value).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return default_data_root()
