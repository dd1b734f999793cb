"""The simulator's proposal books: they catch a final outcome that changes or that the two
sides disagree on, as soon as the record is durable."""

from __future__ import annotations

import pytest

from simulations.books import ProposalBook
from simulations.violations import InvariantViolation


def test_both_sides_agreeing_settles_the_proposal() -> None:
    book = ProposalBook("a", "b")
    book.proposed(True, 0, 11, 0)
    book.proposed(False, 0, 11, 5)
    assert book.agrees_below(1)  # pending at both sides: they agree
    book.decided(False, 0, True, 6)
    assert not book.agrees_below(1)
    assert book.settled == 0
    book.decided(True, 0, True, 9)
    assert book.settled == 1 and book.agrees_below(1)
    assert book.accepted == 1


def test_a_final_outcome_that_changes_is_a_violation() -> None:
    book = ProposalBook("a", "b")
    book.proposed(True, 0, 11, 0)
    book.decided(False, 0, True, 1)
    with pytest.raises(InvariantViolation) as raised:
        book.decided(False, 0, False, 2)
    assert raised.value.violation.invariant == "finality"
    assert raised.value.violation.nodes == ("a", "b")


def test_sides_with_different_outcomes_break_conservation() -> None:
    book = ProposalBook("a", "b")
    book.decided(False, 3, True, 1)
    with pytest.raises(InvariantViolation) as raised:
        book.decided(True, 3, False, 2)
    assert raised.value.violation.invariant == "conservation"


def test_a_proposal_whose_content_changes_is_a_violation() -> None:
    book = ProposalBook("a", "b")
    book.proposed(True, 0, 11, 0)
    with pytest.raises(InvariantViolation):
        book.proposed(True, 0, 12, 1)
    other = ProposalBook("a", "b")
    other.proposed(True, 0, 11, 0)
    with pytest.raises(InvariantViolation) as raised:
        other.proposed(False, 0, 12, 1)
    assert raised.value.violation.invariant == "agreement"
