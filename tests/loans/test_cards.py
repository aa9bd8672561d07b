"""The loan_request card in a circle chat follows its loan: pledges, disbursement, cancel, expiry."""

from __future__ import annotations

import pytest

from backend.chat.models import Message
from backend.core import clock
from backend.loans import services
from tests.chat.conftest import gid, token_for
from tests.chat.test_socket_chat import QUIET, call, next_frame, open_socket

from .conftest import YUAN, circle_with, fund, new_user

TERMS = {"term_months": 2, "rate_bp": 800, "method": "equal_instalment", "purpose": "周转", "funding_days": 3}


async def chat_frame(ws) -> dict:
    """The next chat frame (lenders' inbox notifications about the loan arrive too)."""
    return await next_frame(ws, skip=(*QUIET, "notification"))


def request(borrower, circle, amount):
    return services.create_loan_request(borrower=borrower, amount=amount, circle_ids=[circle.pk], **TERMS)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_members_see_the_card_posted_then_updated_live_as_the_loan_is_funded_and_cancelled():
    borrower, ada, bob = [await call(new_user, name=n) for n in ("借款人", "Ada", "Bob")]
    for lender in (ada, bob):
        await call(fund, user=lender, amount=10_000 * YUAN)
    circle = await call(lambda: circle_with(borrower, ada, bob))
    ws = await open_socket(await call(token_for, user=ada))
    loan = await call(request, borrower=borrower, circle=circle, amount=100_000)
    posted = await chat_frame(ws)
    assert posted["type"] == "message" and posted["message"]["sender_id"] is None
    card = posted["message"]["card"]
    assert (card["kind"], card["owner"], card["borrower"], card["amount"], card["version"], card["state"]) == (
        "loan_request", "loans", loan.pseudonym, 100_000, 0, {"status": "funding", "funded": 0})
    assert card["loan_id"] == gid("LoanRequest", loan.pk) and card["funding_deadline"] == \
        loan.funding_deadline.date().isoformat()
    states = []
    await call(services.pledge, lender=bob, loan_id=loan.pk, amount=40_000, idempotency_key="bob-pledge-1")
    await call(services.pledge, lender=bob, loan_id=loan.pk, amount=40_000, idempotency_key="bob-pledge-1")  # retry
    await call(services.pledge, lender=ada, loan_id=loan.pk, amount=60_000, idempotency_key="ada-pledge-1")
    for _ in range(2):
        frame = await chat_frame(ws)
        assert frame["type"] == "card.updated" and frame["message"]["id"] == posted["message"]["id"]
        states.append((frame["message"]["card"]["version"], frame["message"]["card"]["state"]))
    assert states == [(1, {"status": "funding", "funded": 40_000}), (2, {"status": "active", "funded": 100_000})]
    other = await call(request, borrower=borrower, circle=circle, amount=50_000)
    assert (await chat_frame(ws))["message"]["card"]["state"]["status"] == "funding"
    await call(services.cancel_loan_request, borrower=borrower, loan_id=other.pk)
    cancelled = await chat_frame(ws)
    assert cancelled["type"] == "card.updated" and cancelled["message"]["card"]["state"] == {
        "status": "cancelled", "funded": 0} and cancelled["message"]["card"]["version"] == 1
    await ws.disconnect()


@pytest.mark.django_db
def test_expiry_updates_the_card_and_only_circle_members_can_read_it(client):
    borrower, ada, eve = new_user("借款人"), new_user("Ada"), new_user("Eve")
    circle = circle_with(borrower, ada)
    loan = request(borrower, circle, 100_000)
    assert services.expire_unfunded_requests() == 0
    with clock.frozen_at(loan.funding_deadline):
        assert services.expire_unfunded_requests() == 1
        assert services.expire_unfunded_requests() == 0  # a re-run of the scan changes no card twice
    query = """query($id: ID!) { messages(conversationId: $id, last: 20) { edges { node { card } } } }"""
    variables = {"id": gid("Conversation", circle.conversation_id)}
    answers = {}
    for user in (ada, eve):
        answers[user.pk] = client.post("/graphql/", {"query": query, "variables": variables},
                                       content_type="application/json",
                                       HTTP_AUTHORIZATION=f"Bearer {token_for(user)}").json()
    cards = [e["node"]["card"] for e in answers[ada.pk]["data"]["messages"]["edges"] if e["node"]["card"]]
    assert [(c["kind"], c["state"], c["version"]) for c in cards] == [
        ("loan_request", {"status": "expired", "funded": 0}, 1)]
    assert answers[eve.pk]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert Message.objects.filter(conversation_id=circle.conversation_id, kind="card").count() == 1
