"""A child process that checks the signatures of queued batched transfers (the shell's side).

Why: the node decides on one thread, holding Python's global lock. Checking a
signature costs about as much as everything else a transfer costs there, and
threads that check beside it fight it for that lock (measured: slower, not
faster). A child process has its own lock and its own core: while the node
decides one ``ledger_transfers`` request, the child checks the next ones of
the same pass.

Rules:
- The node sends the child, in order, the raw instructions of the batched
  requests of a pass but the first (``send``), which it checks itself while
  the child starts (measured: better than splitting the first between them).
  The child answers every batch, in the same order, with one byte per
  instruction: 1 when it decodes strictly and its signature verifies, 0
  otherwise.
- The node still decodes and decides each instruction itself. A 1 is written
  into the signature memo by the signature's exact bytes
  (``node.signatures.remember_valid``), so the Books' own check finds it; a 0
  or no answer means the node checks in-process as before. The child is part
  of the node (same code, same user), trusted like one of its threads.
- Never blocks the node on writing: what is sent and not yet answered stays
  under CHECK_AHEAD_BYTES_MAX, which the pipe holds (its size is raised to it).
- The child says it has started with an empty frame (its hello). Until the
  node has read it, batches are not sent ahead but checked in-process, so
  the child's start-up (imports: a few hundred ms, seconds on a loaded
  machine) never counts against an answer's deadline; a child not started
  within CHECK_AHEAD_START_TIMEOUT_MS is given up.
- If the child dies, misbehaves or does not answer within
  CHECK_AHEAD_ANSWER_TIMEOUT_MS (stopped, stuck), the node kills it, logs it
  once and checks everything in-process from then on. Nothing is ever lost:
  a batch the child did not answer is checked by the node.
- Frames on the pipes: 4-byte big-endian length, then msgpack (a list of
  bytes, node to child) or raw bytes (the answer, child to node).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import IO

import structlog

from node.codec import DecodeError, pack, unpack
from node.ledger.signed import signed_instruction_from_parts
from node.limits import (
    API_FRAME_BYTES_MAX,
    CHECK_AHEAD_ANSWER_TIMEOUT_MS,
    CHECK_AHEAD_BYTES_MAX,
    CHECK_AHEAD_START_TIMEOUT_MS,
    LEDGER_TRANSFERS_PER_REQUEST_MAX,
)
from node.verify_pool import usable_cpus

log = structlog.get_logger("ledgermesh.check_ahead")

_LENGTH = struct.Struct(">I")
_HELLO = _LENGTH.pack(0)  # the child's first frame: started, ready for batches
_F_SETPIPE_SZ, _F_GETPIPE_SZ = 1031, 1032  # Linux fcntl: a pipe's size
_PAGE_BYTES = 4096  # a pipe's buffers are pages


class CheckAhead:
    """The node's end of the child: ``send`` batches, then ``answers_for`` each, in order."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._to_child: IO[bytes] = process.stdin
        self._from_child: IO[bytes] = process.stdout
        self._sent: deque[tuple[Sequence[bytes], int]] = deque()  # (batch, frame bytes)
        self._bytes_ahead = 0
        self.broken = False
        self.batches_checked = 0
        self._started = time.monotonic()
        self._ready = False  # the child's hello was read
        # What the pipe to the child holds is what may be sent ahead without blocking.
        self._bytes_ahead_max = _pipe_size(self._to_child.fileno())

    def send(self, batch: Sequence[bytes]) -> bool:
        """Ask the child to check ``batch`` (raw instructions); False when it cannot
        take it now (it is full, or broken): the node checks them itself."""
        if self.broken or not self.ready():
            return False
        frame = pack(list(batch))
        # A pipe holds whole pages: count the pages a frame may take, not bytes.
        size = (-(-(_LENGTH.size + len(frame)) // _PAGE_BYTES) + 1) * _PAGE_BYTES
        if self._bytes_ahead + size > self._bytes_ahead_max:
            return False
        try:
            data = memoryview(_LENGTH.pack(len(frame)) + frame)
            while data:  # the pipe is unbuffered: a write may take part of it
                data = data[os.write(self._to_child.fileno(), data) :]
        except OSError as error:
            self._break(f"cannot write to the checker: {error}")
            return False
        self._sent.append((batch, size))
        self._bytes_ahead += size
        return True

    def ready(self, timeout_s: float = 0.0) -> bool:
        """Whether the child has started (its hello read), waiting up to ``timeout_s``."""
        if self._ready or self.broken:
            return self._ready
        try:
            readable, _, _ = select.select([self._from_child], [], [], timeout_s)
            if readable:
                deadline = time.monotonic() + CHECK_AHEAD_ANSWER_TIMEOUT_MS / 1000
                if self._read_exactly(_LENGTH.size, deadline) != _HELLO:
                    self._break("the checker did not start")
                    return False
                self._ready = True
            elif time.monotonic() - self._started > CHECK_AHEAD_START_TIMEOUT_MS / 1000:
                self._break("the checker did not start in time")
        except (TimeoutError, OSError) as error:
            self._break(f"the checker did not start: {error!r}")
        return self._ready

    def answers_for(self, batch: Sequence[bytes]) -> bytes | None:
        """The child's answer for ``batch`` (one byte per instruction), waiting for
        it if need be; None when ``batch`` was not sent or the child failed.
        Answers of batches sent before it and never asked for are read and dropped."""
        if not any(sent == batch for sent, _ in self._sent):
            return None
        while self._sent:
            sent, size = self._sent.popleft()
            self._bytes_ahead -= size
            answer = self._read_answer(len(sent))
            if sent == batch:
                return answer
        return None

    def forget(self) -> None:
        """Drop what was sent and not asked for (end of a pass)."""
        while self._sent:
            sent, size = self._sent.popleft()
            self._bytes_ahead -= size
            self._read_answer(len(sent))

    def _read_answer(self, count: int) -> bytes | None:
        if self.broken:
            return None
        deadline = time.monotonic() + CHECK_AHEAD_ANSWER_TIMEOUT_MS / 1000
        try:
            header = self._read_exactly(_LENGTH.size, deadline)
            (length,) = _LENGTH.unpack(header) if len(header) == _LENGTH.size else (-1,)
            answer = self._read_exactly(length, deadline) if length == count else b""
        except TimeoutError:
            self._break("the checker did not answer in time")
            return None
        except OSError as error:
            self._break(f"cannot read from the checker: {error}")
            return None
        if len(answer) != count:
            self._break(f"the checker answered {len(answer)} bytes for {count} instructions")
            return None
        self.batches_checked += 1
        return answer

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        """``size`` bytes from the child, fewer at its end; TimeoutError at ``deadline``."""
        chunks: list[bytes] = []
        while size > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._from_child], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(self._from_child.fileno(), size)
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _break(self, why: str) -> None:
        if not self.broken:
            log.warning("signature checker stopped; checking in-process", why=why)
        self.broken = True
        self._sent.clear()
        self._bytes_ahead = 0
        self._process.kill()  # stuck or not, it is done
        self.close()

    def close(self) -> None:
        """Stop the child: it ends at the end of its input; killed if it does not."""
        with contextlib.suppress(OSError):
            self._to_child.close()
        try:
            self._process.wait(timeout=CHECK_AHEAD_ANSWER_TIMEOUT_MS / 1000)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        with contextlib.suppress(OSError):
            self._from_child.close()


def _pipe_size(fd: int) -> int:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, CHECK_AHEAD_BYTES_MAX)
    try:
        size = fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        size = 1 << 16  # Linux's default
    return min(CHECK_AHEAD_BYTES_MAX, size)


@contextlib.contextmanager
def open_check_ahead() -> Iterator[CheckAhead | None]:
    """The child, when this machine has a core to spare for it; else None."""
    if usable_cpus() < 2:
        yield None
        return
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "node.check_ahead"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
        )
    except OSError as error:
        log.warning("no signature checker; checking in-process", why=str(error))
        yield None
        return
    checker = CheckAhead(process)
    try:
        yield checker
    finally:
        checker.close()


# --- the child ---------------------------------------------------------------------------


def check_batch(frame: bytes) -> bytes:
    """One byte per raw instruction of ``frame``: 1 when it decodes and verifies."""
    try:
        batch = unpack(frame, API_FRAME_BYTES_MAX)
    except DecodeError:
        return b""
    if type(batch) is not list or len(batch) > LEDGER_TRANSFERS_PER_REQUEST_MAX:
        return b""
    return bytes(_checks(raw) for raw in batch)


def _checks(raw: object) -> int:
    try:
        parts = unpack(raw, API_FRAME_BYTES_MAX) if type(raw) is bytes else None
        if type(parts) is not list or len(parts) != 3:
            return 0
        return int(signed_instruction_from_parts(*parts).verifies())
    except DecodeError:
        return 0


def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """Say hello, then answer frames until the node closes the pipe."""
    sink.write(_HELLO)
    sink.flush()
    while True:
        header = source.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack(header)
        if length > CHECK_AHEAD_BYTES_MAX:
            return
        answer = check_batch(source.read(length))
        sink.write(_LENGTH.pack(len(answer)) + answer)
        sink.flush()


if __name__ == "__main__":
    # Ctrl-C in the node's terminal reaches the whole process group: the node
    # stops the child by closing its input, so the child ignores it (no traceback).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.buffer, sys.stdout.buffer)
