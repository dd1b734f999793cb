"""A one-line progress bar on stderr, for long runs.

Rules:
- Drawn only when stderr is a terminal (so logs, pipes and CI output stay
  clean), as carriage-return updates of one line, at most every
  PROGRESS_UPDATE_S; ``finish`` ends the line.
- It reads the wall clock for throttling only; nothing it does reaches a
  simulation.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from simulations.limits import PROGRESS_UPDATE_S

BAR_WIDTH = 30


class Progress:
    def __init__(self, label: str, total: float, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1e-9)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.started = time.monotonic()
        self.last_drawn = 0.0
        self.drawn = False

    def update(self, done: float, detail: str = "", *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last_drawn < PROGRESS_UPDATE_S:
            return
        self.last_drawn = now
        share = min(1.0, done / self.total)
        filled = int(share * BAR_WIDTH)
        elapsed = now - self.started
        remaining = elapsed * (1 - share) / share if share > 0 else 0.0
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {share:6.1%} {detail} "
            f"elapsed {elapsed:,.0f}s, left ~{remaining:,.0f}s   "
        )
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
