"""Shared matplotlib set-up for every figure: one look, PNG + PDF output, no global state.

Figures are :class:`matplotlib.figure.Figure` objects drawn on their own Agg canvas, never through
pyplot's global figure manager: importing ``figures`` neither selects a backend nor touches
``matplotlib.rcParams``, so a notebook that imports it keeps its own backend and style. The house style
is applied only inside :func:`styled` (a ``matplotlib.rc_context``), which every figure maker enters
while it draws and saves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: Class colours used in every scatter plot (y = +1, y = −1).
POS_COLOUR = "#1f77b4"
NEG_COLOUR = "#d62728"

#: Readable defaults for print-sized figures (applied only inside :func:`styled`).
STYLE: dict[str, Any] = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
}


@contextlib.contextmanager
def styled() -> Iterator[None]:
    """The house style for the figures drawn and saved inside the block; the caller's rcParams come back after."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(**kwargs: Any) -> Figure:
    """A figure on its own Agg canvas (not registered with pyplot, so nothing is shown or leaked)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, *, sharex: bool | str = False, sharey: bool | str = False,
             squeeze: bool = True, **fig_kw: Any) -> tuple[Figure, Any]:
    """Like ``plt.subplots`` but on :func:`new_figure`."""
    fig = new_figure(**fig_kw)
    axes = fig.subplots(nrows, ncols, sharex=sharex, sharey=sharey, squeeze=squeeze)
    return fig, axes


def colour_cycle() -> list[str]:
    """The colours of the active property cycle."""
    return list(matplotlib.rcParams["axes.prop_cycle"].by_key()["color"])


def save(fig: Figure, out_dir: Path, stem: str, *, dpi: float | None = None, tight: bool = True) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` into ``out_dir`` (created if needed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        kwargs: dict[str, Any] = {"bbox_inches": "tight"} if tight else {}
        if dpi is not None:
            kwargs["dpi"] = dpi
        fig.savefig(path, **kwargs)
    return paths
