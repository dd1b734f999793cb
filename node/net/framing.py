"""Length-prefixed framing and the per-connection rate limit, without any I/O.

Rules:
- A frame is a 4-byte big-endian length, then that many bytes of payload.
- A length above the decoder's maximum is a violation by the peer: the decoder
  records ``error`` and stops; the owner closes the connection. It never raises.
- A zero-length frame carries no payload. The QUIC transport uses it as its
  "hello" marker (the first frame each side writes); the owner decides what
  it means, the decoder only returns it as ``b""``.
- The token bucket takes ``now`` as an argument, so it runs on any clock.
"""

from __future__ import annotations

import struct

_LENGTH = struct.Struct(">I")
LENGTH_PREFIX_BYTES = _LENGTH.size


def encode_frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class FrameDecoder:
    """Turns a byte stream into frames; keeps at most one partial frame."""

    def __init__(self, frame_bytes_max: int) -> None:
        self._frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self.error: str | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """The complete frames ``data`` finishes, in order.

        After a violation ``error`` is set and every later call returns [].
        """
        if self.error is not None:
            return []
        if self._buffer:
            self._buffer += data
            frames, consumed = self._split(self._buffer)
            del self._buffer[:consumed]
        else:
            # Fast path: most chunks hold whole frames; slice bytes directly.
            frames, consumed = self._split(data)
            if consumed < len(data):
                self._buffer += data[consumed:]
        if self.error is not None:
            self._buffer.clear()
        return frames

    def _split(self, data: bytes | bytearray) -> tuple[list[bytes], int]:
        frames: list[bytes] = []
        offset = 0
        available = len(data)
        while available - offset >= LENGTH_PREFIX_BYTES:
            (length,) = _LENGTH.unpack_from(data, offset)
            if length > self._frame_bytes_max:
                self.error = f"frame of {length} bytes exceeds {self._frame_bytes_max}"
                return frames, offset
            end = offset + LENGTH_PREFIX_BYTES + length
            if end > available:
                break
            frames.append(bytes(data[offset + LENGTH_PREFIX_BYTES : end]))
            offset = end
        return frames, offset


class TokenBucket:
    """Allows ``rate_per_s`` events a second on average, bursts up to ``burst``."""

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        assert rate_per_s > 0 and burst >= 1
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._tokens = burst
        self._updated_s = now

    def take(self, now: float) -> bool:
        """Consume one token if there is one."""
        if self._tokens < 1:
            # Refill only when empty: the common case stays a subtraction.
            elapsed_s = max(0.0, now - self._updated_s)
            self._tokens = min(self._burst, self._tokens + elapsed_s * self._rate_per_s)
            self._updated_s = now
            if self._tokens < 1:
                return False
        self._tokens -= 1
        return True
