"""The progress display of a running grid: an observer of :class:`ray_jobs.scheduler.Scheduler`.

On a terminal it is one tqdm line (runs done, failed, running, queued, and the progress of up to
three running runs, read from their ``status.json``); otherwise a plain line on stderr whenever the
counts change, and every 30 s while progress moves.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

REPRINT_S = 30.0


def progress_text(prog: dict[str, Any]) -> str:
    """'epoch 2/5', 'step 3/8', the phase, or '' from a run's status.json progress."""
    if "epoch" in prog:
        return f"epoch {prog['epoch']}/{prog.get('epochs', '?')}"
    if "step" in prog:
        return f"step {prog['step']}/{prog.get('steps', '?')}"
    return str(prog.get("phase", ""))


@dataclass(frozen=True)
class Snapshot:
    """What an observer is told after each scheduling step."""

    done: int
    failed: int  # failed + blocked
    running: list[tuple[str, dict[str, Any]]]  # (short label, progress) of the runs that have started
    queued: int  # submitted, not started yet


class Display:
    """Runs done/failed/running and the progress of the running runs (see the module docstring)."""

    def __init__(self, total: int, initial: int, name: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.enabled, self.total, self.name = enabled, total, name
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=name, unit="run", file=sys.stderr,
                        dynamic_ncols=True, disable=not (enabled and self.tty))
        self.last_counts: tuple[int, int, int, int] | None = None
        self.last_print = 0.0

    def on_step(self, snap: Snapshot) -> None:
        self.update(snap.done, snap.failed, snap.running, queued=snap.queued)

    def update(self, done: int, failed: int, running: list[tuple[str, dict[str, Any]]], queued: int = 0) -> None:
        parts = [f"{label} {progress_text(prog)}".rstrip() for label, prog in running[:3]]
        if self.tty:
            self.bar.n = done
            self.bar.set_postfix_str(" | ".join([f"failed={failed}", f"running={len(running)}", f"queued={queued}",
                                                 *parts]), refresh=True)
            return
        counts = (done, failed, len(running), queued)
        now = time.time()
        if self.enabled and (counts != self.last_counts or now - self.last_print > REPRINT_S):
            print(f"[{self.name}] done {done}/{self.total}, failed {failed}, running {len(running)}, queued {queued}"
                  + (": " + " | ".join(parts) if parts else ""), file=sys.stderr, flush=True)
            self.last_counts, self.last_print = counts, now

    def close(self) -> None:
        self.bar.close()
