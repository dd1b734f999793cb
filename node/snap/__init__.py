"""SNAP bilateral ledgers: pure state machines, one per trusted peer.

``BilateralLedger`` (ledger.py) decides; ``records`` are its only state
changes; ``events`` holds its inputs, effects and views; ``transcript``
replays a SNAP message log between two parties. Nothing here does I/O.
"""

from node.snap.events import (
    ActionDecide,
    ActionLearnPreimage,
    ActionPropose,
    Balances,
    Direction,
    Effect,
    Input,
    NotifyFinal,
    NotifyIncomingConditional,
    NotifyProposed,
    NotifyRefused,
    PartyBalance,
    PeerConnected,
    PersistRecord,
    ProposalStatus,
    ProposalView,
    ReceiveMessages,
    Refusal,
    RejectReason,
    SendMessages,
    TimerTick,
    Totals,
)
from node.snap.ledger import BilateralLedger, PreimageLookup
from node.snap.records import (
    EvidenceKept,
    IncomingDecided,
    IncomingDecisionAcked,
    IncomingProposed,
    OutgoingDecided,
    OutgoingProposeAcked,
    OutgoingProposed,
    Record,
    record_from_wire,
)

__all__ = [
    "ActionDecide",
    "ActionLearnPreimage",
    "ActionPropose",
    "Balances",
    "BilateralLedger",
    "Direction",
    "Effect",
    "EvidenceKept",
    "IncomingDecided",
    "IncomingDecisionAcked",
    "IncomingProposed",
    "Input",
    "NotifyFinal",
    "NotifyIncomingConditional",
    "NotifyProposed",
    "NotifyRefused",
    "OutgoingDecided",
    "OutgoingProposeAcked",
    "OutgoingProposed",
    "PartyBalance",
    "PeerConnected",
    "PersistRecord",
    "PreimageLookup",
    "ProposalStatus",
    "ProposalView",
    "ReceiveMessages",
    "Record",
    "Refusal",
    "RejectReason",
    "SendMessages",
    "TimerTick",
    "Totals",
    "record_from_wire",
]
