"""The `loan_request` card in each circle chat a request is shown in.

Posted sender-less (``chat.post_server_card``): sending it as the borrower would reveal them. It carries only
what the request page shows a lender — pseudonym (or name, when not anonymous), amount, term, rate, method,
funded so far, status, funding deadline — and the loans app updates its state on every change (pledge,
disbursement, cancel, expiry, default, repaid). The 公开通报 on default stays a separate system notice.
"""

from __future__ import annotations

from typing import Any

from backend.chat import services as chat
from backend.core.ids import encode_id

from ..models import Loan, LoanCircle
from ._common import TYPE

CARD_KIND = "loan_request"
OWNER = "loans"


def _state(loan: Loan) -> dict[str, Any]:
    return {"status": loan.status, "funded": loan.funded}


def post_loan_cards(loan: Loan, *, who: str) -> None:
    """Caller holds the loan. One card per circle conversation, keyed on the loan so a re-run posts none twice."""
    card = {
        "kind": CARD_KIND, "owner": OWNER, "loan_id": encode_id(TYPE, loan.pk), "title": f"借款请求 {who}",
        "borrower": who, "amount": loan.amount, "term_months": loan.term_months, "rate_bp": loan.rate_bp,
        "method": loan.method, "funding_deadline": loan.funding_deadline.date().isoformat(), "state": _state(loan),
    }
    for shown in loan.shown_in.select_related("circle").filter(circle__conversation__isnull=False).order_by("id"):
        message, _ = chat.post_server_card(conversation_id=shown.circle.conversation_id,
                                           key=f"loan:{loan.pk}", card=card)
        shown.card_message, shown.card_version = message, message.card_version
        shown.save(update_fields=["card_message", "card_version"])


def refresh_loan_cards(loan: Loan) -> None:
    """Caller holds the loan (so card updates are ordered): every card takes the loan's current state."""
    state = _state(loan)
    for shown in LoanCircle.objects.filter(loan=loan, card_message__isnull=False).order_by("id"):
        message = chat.update_card(message_id=shown.card_message_id, owner=OWNER, state=state,
                                   expected_version=shown.card_version)
        shown.card_version = message.card_version
        shown.save(update_fields=["card_version"])
