"""Helpers for trio nurseries, shared by the shell and the transport."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def only_exception(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception inside (possibly nested) nursery groups, if there is exactly one."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        item = pending.pop()
        if isinstance(item, BaseExceptionGroup):
            pending.extend(item.exceptions)
        else:
            leaves.append(item)
    return leaves[0] if len(leaves) == 1 else None


@contextmanager
def collapse_single_exception_group() -> Iterator[None]:
    """Let a lone exception leave nurseries as itself, not wrapped in ExceptionGroups.

    Callers of ``open_*`` context managers expect the typed error they know
    (``ApiError``, ``ConnectError``), not a group that happens to hold one.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        exception = only_exception(group)
        if exception is None:
            raise
        context = exception.__context__
        try:
            raise exception from exception.__cause__
        finally:
            exception.__context__ = context
            del exception, context
