"""The operator's ``pay`` with ``wait``: a flag of multi-hop payments, checked like the rest."""

from __future__ import annotations

import pytest

from node.api.protocol import ApiError, Request, decode_request, encode_request

PAY = {"to": "bank-d.test", "amount": 100, "unit": "1E-2 USD"}


def decoded(**args: object) -> Request:
    return decode_request(encode_request(Request(7, "pay", args)))


def test_wait_is_a_flag_of_a_multi_hop_payment() -> None:
    assert decoded(**PAY, wait=True).args["wait"] is True
    assert decoded(**PAY, wait=False).args["wait"] is False
    assert "wait" not in decoded(**PAY).args


@pytest.mark.parametrize(
    "args, message",
    [
        ({**PAY, "wait": 1}, "wait must be true or false"),
        ({**PAY, "wait": "yes"}, "wait must be true or false"),
        ({"peer": "bank-b.test", "amount": 100, "unit": "1E-2 USD", "wait": True},
         "wait is for a multi-hop payment"),
    ],
)  # fmt: skip
def test_a_bad_wait_is_a_bad_request(args: dict[str, object], message: str) -> None:
    with pytest.raises(ApiError, match=message) as refused:
        decoded(**args)
    assert refused.value.code == "bad-request"
