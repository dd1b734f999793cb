"""What the payment core refuses: its node's actions (``NotifyRefused``) and
the transfers that end here (a rejection code).

Rules:
- Pure functions of an action, the state and ``now_ms``: a problem is a short
  sentence for the operator, None means the action is acceptable. Nothing here
  changes the state.
- Every value an action puts into a record is checked here against the bound
  the log codec (``records``) enforces, so what is recorded always decodes.
"""

from __future__ import annotations

from node.codec import valid_unit
from node.limits import (
    ADDRESS_LENGTH_MAX,
    AMOUNT_MAX,
    HASH_BYTES,
    NAME_LENGTH_MAX,
    PAYMENT_EXPIRY_MS_MAX,
    PAYMENT_FINAL_DELTA_MS,
    PAYMENT_FINAL_EXPIRY_MS_MIN,
    PAYMENT_ID_LENGTH_MAX,
    REASON_LENGTH_MAX,
)
from node.payments.events import (
    FINAL_DELTA_MS_MAX,
    ActionAbandon,
    ActionExpect,
    ActionInvoice,
    ActionPay,
    Failure,
    IncomingConditional,
)
from node.payments.state import Invoice, PaymentState
from node.signatures import sha256


def pay_problem(action: ActionPay, own_domain: str, state: PaymentState, now_ms: int) -> str | None:
    if not 0 < len(action.payment_id) <= PAYMENT_ID_LENGTH_MAX:
        return f"a payment id is 1..{PAYMENT_ID_LENGTH_MAX} characters"
    if not 0 < action.amount <= AMOUNT_MAX or not 0 <= action.max_fee <= AMOUNT_MAX:
        return "amount and max_fee must be in range"
    if not valid_unit(action.unit):
        return f"unit {action.unit!r} is not like '1E-2 USD'"
    if action.payee_domain == own_domain:
        return "the payee banks here: not a cross-validator payment"
    if action.deadline_ms <= now_ms:
        return "the deadline has passed"
    return _preset_problem(action, state, now_ms)


def _preset_problem(action: ActionPay, state: PaymentState, now_ms: int) -> str | None:
    if action.condition is not None:
        if len(action.condition) != HASH_BYTES:
            return f"a condition is {HASH_BYTES} bytes"
        if action.condition in state.payment_by_condition:
            return "another payment of ours has this condition"
    delta_ms = action.final_delta_ms
    if delta_ms is not None and not PAYMENT_FINAL_DELTA_MS <= delta_ms <= FINAL_DELTA_MS_MAX:
        return f"final_delta_ms is {PAYMENT_FINAL_DELTA_MS}..{FINAL_DELTA_MS_MAX}"
    latest_ms = action.latest_expiry_ms
    if latest_ms is not None and not now_ms < latest_ms <= now_ms + PAYMENT_EXPIRY_MS_MAX:
        return f"latest_expiry_ms is in the next {PAYMENT_EXPIRY_MS_MAX} ms"
    return None


def invoice_problem(
    action: ActionInvoice | ActionExpect,
    preimage: bytes | None,
    own_domain: str,
    state: PaymentState,
    now_ms: int,
) -> str | None:
    """A new invoice (``preimage`` given) or expectation (None). The caller has
    already answered a repeat of the same (payer, payment id)."""
    if len(action.condition) != HASH_BYTES:
        return f"a condition is {HASH_BYTES} bytes"
    if preimage is not None and sha256(preimage) != action.condition:
        return "the preimage does not hash to the condition"
    if action.condition in state.invoices:
        return "another invoice has this condition"
    if not 0 < len(action.payment_id) <= PAYMENT_ID_LENGTH_MAX:
        return f"a payment id is 1..{PAYMENT_ID_LENGTH_MAX} characters"
    if not 0 < len(action.payer) <= NAME_LENGTH_MAX or action.payer == own_domain:
        return "the payer is another validator's domain"
    if not 0 < len(action.payee) <= ADDRESS_LENGTH_MAX:
        return f"a payee is 1..{ADDRESS_LENGTH_MAX} characters"
    if not 0 < action.amount <= AMOUNT_MAX or not valid_unit(action.unit):
        return "amount and unit must be valid"
    if not now_ms < action.expires_ms <= now_ms + PAYMENT_EXPIRY_MS_MAX:
        return f"expires_ms is in the next {PAYMENT_EXPIRY_MS_MAX} ms"
    return None


def abandon_problem(
    action: ActionAbandon, invoice: Invoice | None, state: PaymentState
) -> str | None:
    """Abandoning an expectation we may still claim would lose what we paid."""
    if invoice is None:
        return "no invoice has this condition"
    if invoice.paid:
        return str(Failure.ALREADY_PAID)
    if len(action.reason) > REASON_LENGTH_MAX:
        return f"a reason is at most {REASON_LENGTH_MAX} characters"
    if state.claimable(invoice):
        return "our payment with this condition has not failed: the preimage may come"
    return None


def payee_problem(event: IncomingConditional, state: PaymentState, now_ms: int) -> str | None:
    """A conditional whose route ends here, checked against its invoice."""
    invoice = state.invoices.get(event.condition)
    if invoice is None:
        return Failure.UNKNOWN_INVOICE
    created = invoice.created
    if event.unit != created.unit:
        return Failure.WRONG_UNIT
    if invoice.abandoned:
        return Failure.ABANDONED
    if invoice.paid:
        return Failure.ALREADY_PAID
    if invoice.expired or created.expires_ms <= now_ms:  # recorded expired: even if the
        return Failure.TIMEOUT  # wall clock stepped back since, it has ended
    if event.expires_at_ms - now_ms < PAYMENT_FINAL_EXPIRY_MS_MIN:
        return Failure.EXPIRY_TOO_SHORT
    if event.expires_at_ms > now_ms + PAYMENT_EXPIRY_MS_MAX:
        return Failure.EXPIRY_TOO_FAR
    if state.held(invoice) + event.amount > created.amount:
        return Failure.AMOUNT_MISMATCH
    return None
