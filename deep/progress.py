"""Whether to draw progress bars: one rule for every tqdm in deep/.

Bars are on unless the caller passes ``progress=False`` (tests, ray_jobs workers), or
``ADVFEAT_PROGRESS=0`` is set and stderr is not a terminal (log files, CI): a bar redrawn into a file
is noise, while on a terminal the variable alone does not hide it.
"""
from __future__ import annotations

import os
import sys


def progress_enabled(progress: bool = True) -> bool:
    """True when a bar should be drawn, per the module docstring's rule."""
    if not progress:
        return False
    return not (os.environ.get("ADVFEAT_PROGRESS") == "0" and not sys.stderr.isatty())
