"""Loans over GraphQL, and the anonymity walk: every field of every loan type, every notification (inbox frame,
push text), every chat message a lender can read before a default carries nothing that identifies the borrower."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from backend.accounts.ids import user_gid
from backend.chat.models import Message
from backend.core import clock
from backend.core.ids import encode_id
from backend.loans.models import Loan
from backend.notifications.models import Notification
from backend.notifications.services import inbox_frame
from backend.schema import schema
from tests.chat.conftest import token_for
from tests.core.test_mutation_payloads import NOT_WALKABLE, lit, selection

from .conftest import YUAN, circle_with, fund, new_user

pytestmark = pytest.mark.django_db

LOAN_TYPES = ("LoanRequest", "LoanPledge", "LendingPortfolio", "LoanTrustBands", "LoanCircleRef", "CircleExposure")


def every_field(type_name: str, depth: int = 4) -> str:
    return selection(schema.graphql_schema.get_type(type_name), depth)


def ask(gql, token, query, variables=None) -> dict:
    response = gql(query, variables or {}, token=token)
    assert "errors" not in response, response
    return response["data"]


def nodes(connection: dict) -> list[dict]:
    return [edge["node"] for edge in connection["edges"]]


def mutate(gql, token, name, arguments) -> dict:
    payload_type = schema.graphql_schema.mutation_type.fields[name].type
    data = ask(gql, token, f"mutation {{ {name}({arguments}) {selection(payload_type)} }}")[name]
    return data


@pytest.fixture
def world(db):
    borrower = new_user("张秘密")
    borrower.avatar_url = "https://cdn.example.com/avatar-zhang.png"
    borrower.save()
    lenders = [new_user(f"出借{n}") for n in range(2)]
    for lender in lenders:
        fund(lender, 10_000 * YUAN)
    circle = circle_with(borrower, *lenders)
    return borrower, lenders, circle


def secrets_of(user) -> list[str]:
    return [user.display_name, user.phone, user.avatar_url, user_gid(user.pk), user.phone[-8:]]


def assert_anonymous(text: str, borrower) -> None:
    for secret in secrets_of(borrower):
        assert secret not in text, secret


def test_every_loans_payload_renders_and_the_whole_path_works(gql, world):
    borrower, (ada, bob), circle = world
    t_borrower, t_ada, t_bob = token_for(borrower), token_for(ada), token_for(bob)
    created = mutate(gql, t_borrower, "createLoanRequest", (
        f"amount: {300_000}, termMonths: 3, rateBp: 900, method: EQUAL_PRINCIPAL, purpose: {lit('学费')}, "
        f"circleIds: [{lit(encode_id('Circle', circle.pk))}], fundingDays: 5"))
    assert created["errors"] == [] and created["loan"]["status"] == "FUNDING"
    loan = Loan.objects.get()
    request_id = encode_id("LoanRequest", loan.pk)
    bad = mutate(gql, t_borrower, "createLoanRequest", (
        f"amount: {300_000}, termMonths: 600, rateBp: 900, method: BULLET, purpose: {lit('x')}, "
        f"circleIds: [{lit(encode_id('Circle', circle.pk))}], fundingDays: 5"))
    assert bad["errors"][0]["code"] == "TERM_INVALID" and bad["errors"][0]["field"] == "termMonths"
    listed = ask(gql, t_ada, "query { loanRequestsForMe { edges { node { id pseudonym remaining } } "
                             "pageInfo { hasNextPage } } }")["loanRequestsForMe"]
    assert nodes(listed) == [{"id": request_id, "pseudonym": loan.pseudonym, "remaining": 300_000}]
    assert listed["pageInfo"] == {"hasNextPage": False}
    pledged = mutate(gql, t_ada, "pledgeToLoan", f"loanId: {lit(request_id)}, amount: 100000, "
                                                  f"idempotencyKey: {lit('ada-pledge-1')}")
    assert pledged["errors"] == [] and pledged["loan"]["remaining"] == 200_000
    odd = mutate(gql, t_bob, "pledgeToLoan", f"loanId: {lit(request_id)}, amount: 5000, "
                                             f"idempotencyKey: {lit('bob-pledge-0')}")
    assert odd["errors"][0]["code"] == "NOT_TICKET_MULTIPLE"
    done = mutate(gql, t_bob, "pledgeToLoan", f"loanId: {lit(request_id)}, amount: 200000, "
                                              f"idempotencyKey: {lit('bob-pledge-1')}")
    assert done["errors"] == [] and done["loan"]["status"] == "ACTIVE"
    my_id = encode_id("MyLoan", loan.pk)
    mine = nodes(ask(gql, t_borrower, f"query {{ myLoans {every_field('MyLoanConnection', 5)} }}")["myLoans"])[0]
    assert mine["id"] == my_id and len(mine["instalments"]) == 3 and mine["payoffAmount"] > 0
    first = mine["instalments"][0]
    repaid = mutate(gql, t_borrower, "repayLoan", f"loanId: {lit(my_id)}, amount: "
                                                  f"{first['principal'] + first['interest']}, "
                                                  f"idempotencyKey: {lit('repay-first-1')}")
    assert repaid["errors"] == [] and repaid["loan"]["instalments"][0]["settled"] is True
    # a lender cannot repay (or see) the borrower's loan by its borrower id: as if it did not exist
    stranger = mutate(gql, t_ada, "repayLoan", f"loanId: {lit(my_id)}, amount: 100, "
                                               f"idempotencyKey: {lit('repay-other-1')}")
    assert stranger["errors"][0]["code"] == "NOT_FOUND"
    cancelled = mutate(gql, t_borrower, "cancelLoanRequest", f"loanId: {lit(my_id)}")
    assert cancelled["errors"][0]["code"] == "LOAN_NOT_OPEN"
    portfolio = ask(gql, t_ada, f"query {{ myLendingPortfolio {every_field('LendingPortfolio')} }}")
    folio = portfolio["myLendingPortfolio"]
    assert folio["pledged"] == 100_000 and folio["received"] > 0
    assert nodes(folio["exposure"])[0]["circleId"] == encode_id("Circle", circle.pk)
    pledges = nodes(ask(gql, t_ada, f"query {{ myPledges {every_field('LoanPledgeConnection', 5)} }}")["myPledges"])
    assert [p["amount"] for p in pledges] == [100_000] and pledges[0]["loan"]["id"] == request_id
    staff_only = gql("query { loanArrears { edges { node { daysOverdue } } } }", token=t_ada)
    assert staff_only["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_anonymity_walk_before_default_and_reveal_after(gql, world):
    borrower, (ada, bob), circle = world
    from backend.loans import services

    loans = [services.create_loan_request(borrower=borrower, amount=100_000 * (n + 1), term_months=2, rate_bp=800,
                                          method="equal_instalment", purpose="周转", circle_ids=[circle.pk],
                                          funding_days=3) for n in range(2)]
    services.pledge(lender=ada, loan_id=loans[0].pk, amount=50_000, idempotency_key="ada-pledge-a")
    services.pledge(lender=bob, loan_id=loans[0].pk, amount=50_000, idempotency_key="bob-pledge-a")
    services.pledge(lender=ada, loan_id=loans[1].pk, amount=100_000, idempotency_key="ada-pledge-b")
    loans[0].refresh_from_db()
    due = loans[0].instalments.get(number=1).due_date
    services.scan_loans(today=due + dt.timedelta(days=10))  # overdue, penalties, not yet default
    t_ada = token_for(ada)
    seen = []
    for loan in loans:
        gid = encode_id("LoanRequest", loan.pk)
        seen.append(ask(gql, t_ada, f"query {{ loanRequest(id: {lit(gid)}) {every_field('LoanRequest')} }}"))
        seen.append(ask(gql, t_ada, f"query {{ node(id: {lit(gid)}) {{ ... on LoanRequest "
                                    f"{every_field('LoanRequest')} }} }}"))
    seen.append(ask(gql, t_ada, f"query {{ loanRequestsForMe {every_field('LoanRequestConnection', 4)} }}"))
    seen.append(ask(gql, t_ada, f"query {{ myLendingPortfolio {every_field('LendingPortfolio')} }}"))
    seen.append(ask(gql, t_ada, f"query {{ myPledges {every_field('LoanPledgeConnection', 5)} }}"))
    text = json.dumps(seen, ensure_ascii=False)
    assert_anonymous(text, borrower)
    assert not re.search(r"\d{2}:\d{2}:\d{2}", text)  # no exact time of day on any loan field
    requests = [s["loanRequest"] for s in seen if "loanRequest" in s]
    assert requests[0]["borrower"] is None and requests[0]["pseudonym"] != requests[1]["pseudonym"]
    assert requests[0]["trust"] == requests[1]["trust"]  # bands, the same for both: nothing to link them by
    # every notification (its inbox frame and push text) and every chat message a lender can read
    for lender in (ada, bob):
        for n in Notification.objects.filter(recipient=lender):
            assert_anonymous(json.dumps(inbox_frame(n), ensure_ascii=False, default=str), borrower)
    for message in Message.objects.filter(conversation_id=circle.conversation_id).exclude(sender=borrower):
        assert_anonymous(f"{message.body} {json.dumps(message.data, ensure_ascii=False)}", borrower)
    # the loan_request cards in the circle chat, as a lender's history renders them: sender-less, no trace of
    # the borrower, and their state follows each loan (one fully funded and disbursed, one half funded)
    history = ask(gql, t_ada, "query($id: ID!) { messages(conversationId: $id, last: 50) "
                              f"{every_field('MessageConnection', 4)} }}", {"id": encode_id("Conversation",
                                                                               circle.conversation_id)})
    assert_anonymous(json.dumps(history, ensure_ascii=False), borrower)
    cards = [e["node"] for e in history["messages"]["edges"] if e["node"]["card"]]
    assert [c["sender"] for c in cards] == [None, None]
    assert [(c["card"]["kind"], c["card"]["borrower"], c["card"]["amount"], c["card"]["state"]) for c in cards] == [
        ("loan_request", requests[0]["pseudonym"], 100_000, {"status": "active", "funded": 100_000}),
        ("loan_request", requests[1]["pseudonym"], 200_000, {"status": "funding", "funded": 100_000})]
    assert [c["card"]["version"] for c in cards] == [2, 1]
    # default: the lenders of that loan learn who it was (audited); the other loan's view stays anonymous
    services.scan_loans(today=due + dt.timedelta(days=30))
    revealed = ask(gql, token_for(bob), f"query {{ loanRequest(id: {lit(encode_id('LoanRequest', loans[0].pk))}) "
                                        "{ status borrower { id displayName } } }")["loanRequest"]
    assert revealed == {"status": "DEFAULTED", "borrower": {"id": user_gid(borrower.pk),
                                                            "displayName": borrower.display_name}}
    told = Notification.objects.get(recipient=bob, event="loans.defaulted")
    assert borrower.display_name in told.body and told.payload["borrower_id"] == user_gid(borrower.pk)
    with clock.frozen_at(clock.now()):
        other = ask(gql, token_for(bob), f"query {{ loanRequest(id: {lit(encode_id('LoanRequest', loans[1].pk))}) "
                                         "{ borrower { id } } }")["loanRequest"]
    assert other == {"borrower": None}
    # the card only changes status on default; the 公开通报 that names the borrower is a separate system notice
    card = Message.objects.get(conversation_id=circle.conversation_id, card_kind="loan_request",
                               client_msg_id=f"loan:{loans[0].pk}")
    assert card.card_version == 3 and '"status":"defaulted"' in card.data and borrower.display_name not in card.data


def test_mutations_are_declared_not_walkable_with_this_test():
    for name in ("createLoanRequest", "cancelLoanRequest", "pledgeToLoan", "repayLoan"):
        assert "tests/loans/test_graphql.py" in NOT_WALKABLE[name]


def test_loan_lists_page_with_cursors(gql, world):
    """myLoans, loanRequestsForMe and myPledges are Relay connections: newest first, `first`/`after`, a cursor
    only works on its own list, and the page size is bounded."""
    from backend.loans import services

    borrower, (ada, _bob), circle = world
    loans = [services.create_loan_request(borrower=borrower, amount=100_000, term_months=2, rate_bp=800,
                                          method="bullet", purpose="周转", circle_ids=[circle.pk], funding_days=3)
             for _ in range(3)]
    for n, loan in enumerate(loans):
        services.pledge(lender=ada, loan_id=loan.pk, amount=10_000, idempotency_key=f"ada-page-{n}")
    t_borrower, t_ada = token_for(borrower), token_for(ada)

    def walk(token, field):
        seen, after, pages = [], None, 0
        while True:
            page = ask(gql, token, f"query($a: String) {{ {field}(first: 2, after: $a) {{ edges {{ node {{ id }} }} "
                                   "pageInfo { hasNextPage hasPreviousPage endCursor } } }", {"a": after})[field]
            assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
            seen += [n["id"] for n in nodes(page)]
            pages += 1
            if not page["pageInfo"]["hasNextPage"]:
                return seen, pages, page["pageInfo"]["endCursor"]
            after = page["pageInfo"]["endCursor"]

    newest_first = [loan.pk for loan in reversed(loans)]
    mine, pages, my_cursor = walk(t_borrower, "myLoans")
    assert (mine, pages) == ([encode_id("MyLoan", pk) for pk in newest_first], 2)
    shown, pages, _ = walk(t_ada, "loanRequestsForMe")
    assert (shown, pages) == ([encode_id("LoanRequest", pk) for pk in newest_first], 2)
    pledged, pages, _ = walk(t_ada, "myPledges")
    assert len(pledged) == 3 and pages == 2
    wrong = gql("query($a: String) { myPledges(after: $a) { edges { cursor } } }", {"a": my_cursor}, token=t_ada)
    assert wrong["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"
    too_many = gql("query { myLoans(first: 101) { edges { cursor } } }", token=t_borrower)
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"
