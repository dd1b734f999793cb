"""The event trace of a simulated run: a digest of every event and the last few in full.

Rules:
- Every event the simulator handles (a payload sent, lost, duplicated or
  delivered, a pass, a sync, a crash, a restart, a cut, a heal, an operator
  request or answer) is one line ``time kind a b detail``. Every line goes into
  one SHA-256; the same seed and the same code give the same digest, byte for
  byte, so two runs are compared by their digests.
- Only the last ``TRACE_TAIL_EVENTS`` lines are kept, formatted lazily, for a
  violation report. Payloads enter the trace as their length and CRC-32, so
  the digest covers their exact bytes without keeping them.
- Lines are hashed in batches of TRACE_LINES_PER_UPDATE: SHA-256 of the
  concatenation is the same digest as line by line, for fewer calls.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import deque

TRACE_TAIL_EVENTS = 40  # events shown with a violation
TRACE_LINES_PER_UPDATE = 4_096  # lines joined into one update of the digest

Event = tuple[int, str, int, int, object]


def payload_tag(payload: bytes) -> str:
    """A short, exact stand-in for a payload in the trace."""
    return f"{len(payload)}:{zlib.crc32(payload):08x}"


class Trace:
    """Digest of all events, and the last TRACE_TAIL_EVENTS of them."""

    def __init__(self, names: list[str]) -> None:
        self._hash = hashlib.sha256()
        self._lines: list[str] = []  # not hashed yet
        self._tail: deque[Event] = deque(maxlen=TRACE_TAIL_EVENTS)
        self._names = names
        self.events = 0

    def add(self, time_ms: int, kind: str, a: int, b: int, detail: object) -> None:
        """One event; ``a`` and ``b`` are node indices (-1 for none)."""
        lines = self._lines
        lines.append(f"{time_ms} {kind} {a} {b} {detail}\n")
        self._tail.append((time_ms, kind, a, b, detail))
        self.events += 1
        if len(lines) >= TRACE_LINES_PER_UPDATE:
            self._flush()

    def _flush(self) -> None:
        self._hash.update("".join(self._lines).encode())
        self._lines.clear()

    def digest(self) -> str:
        self._flush()
        return self._hash.hexdigest()

    def _name(self, index: int) -> str:
        if index < 0:
            return "-"
        return self._names[index] if index < len(self._names) else "operator"

    def tail(self) -> list[str]:
        """The last events as people read them: ``t=12.345s pass node-03 ...``."""
        return [
            f"t={time_ms / 1000:.3f}s {kind} {self._name(a)} {self._name(b)} {detail}"
            for time_ms, kind, a, b, detail in self._tail
        ]
