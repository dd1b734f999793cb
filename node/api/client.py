"""The operator's client: connects to a running node and calls the operator API.

Many calls may be in flight on one connection: each waits for the answer with
its own request id, under a deadline.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from node.api.protocol import (
    REQUEST_ID_MAX,
    ApiError,
    Request,
    decode_response,
    encode_request,
    request_id_of,
)
from node.config import OPERATOR_KEY_FILE, load_config
from node.crypto import NodeKey, load_key_file
from node.limits import API_REQUEST_TIMEOUT_S
from node.net.base import TransportError
from node.net.quic import QuicClient, open_quic_client
from node.nurseries import collapse_single_exception_group


@dataclass
class _Pending:
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: ApiError | None = None


class ApiClient:
    def __init__(self, connection: QuicClient, timeout_s: float) -> None:
        self._connection = connection
        self._timeout_s = timeout_s
        # Answers go to the key, not the session: a second session with the same
        # key replaces the first's connection and may be handed an answer meant
        # for the first. Numbering from a random point makes that answer's id
        # one this session never used, so it is dropped, never taken as its own.
        self._next_id = secrets.randbelow(REQUEST_ID_MAX // 2)
        self._pending: dict[int, _Pending] = {}
        self._closed: ApiError | None = None

    async def call(self, op: str, **args: Any) -> Any:
        """Send one request and wait for its answer; raises ApiError."""
        return await self.call_within(self._timeout_s, op, **args)

    async def call_within(self, timeout_s: float, op: str, **args: Any) -> Any:
        """``call`` with its own answer timeout, for a request the node answers late
        on purpose (``wait``); the connection keeps the client's."""
        if self._closed is not None:
            raise self._closed
        request_id = self._next_id
        self._next_id += 1
        pending = _Pending()
        self._pending[request_id] = pending
        try:
            await self._connection.send(encode_request(Request(request_id, op, args)))
            with trio.move_on_after(timeout_s):
                await pending.done.wait()
        except TransportError as error:
            raise ApiError("unreachable", str(error)) from None
        finally:
            self._pending.pop(request_id, None)
        if not pending.done.is_set():
            raise ApiError("timeout", f"no answer to {op} within {timeout_s:g} s")
        if pending.error is not None:
            raise pending.error
        return pending.result

    async def _receive_answers(self) -> None:
        try:
            while True:
                payload = await self._connection.receive()
                try:
                    request_id, result = decode_response(payload)
                    pending = self._pending.get(request_id)
                    if pending is not None:
                        pending.result = result
                except ApiError as error:
                    failed_id = request_id_of(payload)
                    pending = self._pending.get(failed_id) if failed_id is not None else None
                    if pending is not None:
                        pending.error = error
                if pending is not None:
                    pending.done.set()
        except TransportError as error:
            self._closed = ApiError("unreachable", str(error))
            for pending in self._pending.values():
                pending.error = self._closed
                pending.done.set()


@asynccontextmanager
async def open_api_client(
    directory: Path,
    *,
    timeout_s: float = API_REQUEST_TIMEOUT_S,
    key: NodeKey | None = None,
) -> AsyncIterator[ApiClient]:
    """Connect to the node whose directory is ``directory``: as its operator, or
    with ``key`` (a customer's key)."""
    config = load_config(directory)
    if key is None:
        key = load_key_file(directory / OPERATOR_KEY_FILE)
    host, port = config.listen
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1" if host != "::" else "::1"
    try:
        with collapse_single_exception_group():
            async with (
                open_quic_client(key, (host, port), config.public_key, timeout_s=timeout_s) as conn,
                trio.open_nursery() as nursery,
            ):
                client = ApiClient(conn, timeout_s)
                nursery.start_soon(client._receive_answers)
                yield client
                nursery.cancel_scope.cancel()
    except TransportError as error:
        raise ApiError("unreachable", f"{config.name}: {error}") from None
