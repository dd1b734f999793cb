"""The ``ledger_transfers`` request is checked before any instruction is read."""

from __future__ import annotations

import pytest

from node.api.protocol import ApiError, Request, decode_request, encode_request
from node.limits import LEDGER_TRANSFERS_PER_REQUEST_MAX


def request(instructions: object) -> bytes:
    return encode_request(Request(7, "ledger_transfers", {"instructions": instructions}))


def test_a_batch_of_instruction_bytes_up_to_the_limit_is_accepted() -> None:
    batch = [b"x"] * LEDGER_TRANSFERS_PER_REQUEST_MAX
    assert decode_request(request(batch)).args["instructions"] == batch


@pytest.mark.parametrize(
    "instructions",
    [[], [b"x"] * (LEDGER_TRANSFERS_PER_REQUEST_MAX + 1), [b"x", "text"], b"x", None],
    ids=["empty", "too-many", "not-bytes", "not-a-list", "none"],
)
def test_a_bad_batch_is_a_bad_request(instructions: object) -> None:
    with pytest.raises(ApiError) as raised:
        decode_request(request(instructions))
    assert raised.value.code == "bad-request"
