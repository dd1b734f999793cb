"""Simulated bank customers: their keys, and the requests that set them up and trade.

Rules:
- A customer's key is derived from (node, index), like the nodes' keys: the
  same in every run, so a swarm derives them once per process.
- The operator sets every node up as ``ledgermesh`` commands would: define
  USD and EUR (2 decimals, the assets of the node's ``[units]``), register
  each customer (an identity the customer signs), deposit both assets.
- A customer signs its own instructions (offers, cancellations, takes) with
  the next nonce of its own counter. The counter never goes back: a request
  lost with a crash leaves a gap, which the Books allow; reusing a nonce
  would be refused as a replay.
- Everything here builds values; nothing is sent.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from node.ledger.signed import (
    Identity,
    Instruction,
    SignedIdentity,
    SignedInstruction,
)
from node.signatures import NodeKey, sha256
from node.wire import pack
from simulations.limits import OFFER_CODES, OFFER_DEPOSIT, UNITS
from simulations.options import SimulatedKey


@functools.cache
def customer_key(node: int, index: int) -> NodeKey:
    return SimulatedKey(sha256(f"ledgermesh-sim/customer/{node}/{index}".encode()))


@dataclass
class Customer:
    node: int
    index: int
    address: str
    key: NodeKey
    nonce: int = 0
    ready: bool = False  # registered and funded: it may trade

    def next_nonce(self) -> int:
        self.nonce += 1
        return self.nonce

    def signed(self, instruction: Instruction) -> bytes:
        """The instruction signed by this customer, as the API takes it."""
        request = instruction.signing_request()
        signature = self.key.sign(request.kind, request.payload)
        return pack(SignedInstruction(instruction, self.key.public_key, signature).to_wire())


def make_customers(node: int, name: str, count: int) -> list[Customer]:
    return [
        Customer(node, index, f"c{index}@{name}", customer_key(node, index))
        for index in range(count)
    ]


def node_units(name: str) -> dict[str, str]:
    """The node's ``[units]``: each SNAP unit pays customers in the node's asset of its code."""
    return {unit: f"{name}/{code}" for unit, code in zip(UNITS, OFFER_CODES, strict=True)}


@dataclass(frozen=True)
class SetupStep:
    """One operator request of a node's setup; ``customer`` is who it readies, if anyone."""

    op: str
    args: dict[str, Any]
    customer: int | None = None


def setup_steps(name: str, customers: list[Customer]) -> list[SetupStep]:
    """Define the assets, register every customer, deposit both assets to each, in order."""
    steps = [SetupStep("asset_define", {"code": code, "decimals": 2}) for code in OFFER_CODES]
    for customer in customers:
        identity = Identity(customer.address, customer.key.public_key)
        request = identity.signing_request()
        signed = SignedIdentity(identity, customer.key.sign(request.kind, request.payload))
        steps.append(
            SetupStep(
                "user_register",
                {"identity": pack(signed.to_wire()), "kyc_level": 0},
                customer.index,
            )
        )
    for customer in customers:
        for code in OFFER_CODES:
            args = {"address": customer.address, "uai": f"{name}/{code}", "amount": OFFER_DEPOSIT}
            steps.append(SetupStep("deposit", args, customer.index))
    return steps
