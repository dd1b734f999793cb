"""Starting real node processes on loopback, for the demo, tests and benchmarks.

Every node is a real ``ledgermesh run`` process with its own directory, keys,
log and QUIC endpoint. ``LocalNode`` makes the directory with the real CLI,
starts and SIGKILLs the process, and talks to it through the operator API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.api.client import ApiClient, open_api_client
from node.api.protocol import ApiError


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_udp_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free UDP ports: every probe stays bound until all are chosen."""
    probes = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for probe in probes:
            probe.bind((host, 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def cli(*arguments: str) -> str:
    """Run the real CLI in a subprocess; return its stdout, raise on failure."""
    completed = subprocess.run(
        [sys.executable, "-m", "node.cli", *arguments],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"ledgermesh {' '.join(arguments)}: {completed.stderr.strip()}")
    return completed.stdout


@dataclass
class LocalNode:
    name: str
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0
    _stderr: Any = field(default=None, repr=False)

    def init(self) -> None:
        cli("init", str(self.directory), "--name", self.name, "--listen", f"127.0.0.1:{self.port}")

    def trust(self, other: LocalNode, *limits: str) -> None:
        arguments = ["trust", str(self.directory), "--peer-dir", str(other.directory)]
        for limit in limits:
            arguments += ["--limit", limit]
        cli(*arguments)

    def start(self, level: str = "info") -> None:
        assert self.process is None or self.process.poll() is not None
        self._stderr = open(self.directory / "node.stderr", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "node.cli",
                "run",
                str(self.directory),
                "--log-level",
                level,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or snapshot."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1
        if self._stderr is not None:
            self._stderr.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._stderr is not None:
            self._stderr.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, timeout_s: float = 5.0) -> AbstractAsyncContextManager[ApiClient]:
        return open_api_client(self.directory, timeout_s=timeout_s)

    async def call(self, op: str, **arguments: Any) -> Any:
        async with self.client() as client:
            return await client.call(op, **arguments)

    async def wait_answering(self, timeout_s: float = 30.0) -> None:
        """Wait until the node answers its operator (its log is recovered)."""
        with trio.fail_after(timeout_s):
            while True:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited; see {self.directory}/node.stderr")
                try:
                    await self.call("status")
                    return
                except ApiError:
                    await trio.sleep(0.05)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait until the node answers and every trusted peer is connected."""
        with trio.fail_after(timeout_s):
            while True:
                if not self.alive():
                    raise RuntimeError(f"{self.name} exited; see {self.directory}/node.stderr")
                try:
                    status = await self.call("status")
                    if status["peers_connected"] == status["peers"]:
                        return
                except ApiError:
                    pass
                await trio.sleep(0.1)

    async def wait_quiet(self, timeout_s: float = 60.0) -> dict[str, Any]:
        """Wait until nothing is pending and nothing waits for an ACK."""
        with trio.fail_after(timeout_s):
            while True:
                try:
                    status: dict[str, Any] = await self.call("status")
                    if status["pending"] == 0 and status["unacked"] == 0:
                        return status
                except ApiError:
                    pass
                await trio.sleep(0.1)


@contextmanager
def local_mesh(base: Path, names: list[str], *limits: str) -> Iterator[list[LocalNode]]:
    """Make nodes that all trust each other, with ``limits`` both ways; stop them at the end."""
    nodes = [LocalNode(name, base / name, free_udp_port()) for name in names]
    for node in nodes:
        node.init()
    for node in nodes:
        for other in nodes:
            if other is not node:
                node.trust(other, *limits)
    try:
        yield nodes
    finally:
        for node in nodes:
            node.stop()
