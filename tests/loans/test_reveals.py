"""Operations see every audited reveal of a defaulted borrower: in the admin (read-only, audited admin) and
through the staff-only `loanReveals` query (loan, when, to which lender or circle, why); anyone else is refused
with FORBIDDEN. Staff lists page like the rest of the API (Relay cursors)."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.accounts.ids import user_gid
from backend.core import clock
from backend.core.ids import encode_id
from backend.core.pagination import decode_int_cursor, encode_cursor
from backend.loans import services
from backend.loans.models import Loan, RevealAudit
from tests.chat.conftest import token_for

from .conftest import YUAN, new_user, request

pytestmark = pytest.mark.django_db

REVEALS = """query($first: Int, $after: String) { loanReveals(first: $first, after: $after) {
  edges { cursor node { loan { id pseudonym status } borrower { id displayName } toUser { id }
                        toCircle { circleId name } reason revealedAt } }
  pageInfo { hasNextPage hasPreviousPage endCursor } } }"""


def defaulted_loan(people) -> Loan:
    loan = request(people["borrower"], people["circle"], term_months=2)
    for n, (lender, part) in enumerate(zip(people["lenders"], (1_000, 1_500, 500), strict=True)):
        services.pledge(lender=lender, loan_id=loan.pk, amount=part * YUAN, idempotency_key=f"pledge-key-{n}")
    due = loan.instalments.get(number=1).due_date
    services.scan_loans(today=due + dt.timedelta(days=30))
    loan.refresh_from_db()
    assert loan.status == Loan.Status.DEFAULTED
    return loan


def staff_user():
    staff = new_user("运营小王")
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    return staff


def test_staff_list_every_reveal_and_others_are_refused(gql, people):
    borrower, lenders, circle = people["borrower"], people["lenders"], people["circle"]
    loan = defaulted_loan(people)
    for user in (lenders[0], borrower, people["outsider"]):
        refused = gql(REVEALS, {"first": 5}, token=token_for(user))
        assert refused["data"] is None and refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    token = token_for(staff_user())
    first = gql(REVEALS, {"first": 2}, token=token)["data"]["loanReveals"]
    assert first["pageInfo"]["hasNextPage"] is True and first["pageInfo"]["hasPreviousPage"] is False
    rest = gql(REVEALS, {"first": 10, "after": first["pageInfo"]["endCursor"]}, token=token)["data"]["loanReveals"]
    assert rest["pageInfo"]["hasNextPage"] is False and rest["pageInfo"]["hasPreviousPage"] is True
    rows = [e["node"] for e in first["edges"] + rest["edges"]]
    assert len(rows) == RevealAudit.objects.count() == len(lenders) + 1  # each lender, and the circle
    assert {(r["toUser"] or {}).get("id") for r in rows} == {user_gid(u.pk) for u in lenders} | {None}
    assert [r["toCircle"] for r in rows if r["toCircle"]] == [{"circleId": encode_id("Circle", circle.pk),
                                                               "name": circle.name}]
    assert all(r["borrower"] == {"id": user_gid(borrower.pk), "displayName": borrower.display_name} for r in rows)
    assert all(r["loan"] == {"id": encode_id("MyLoan", loan.pk), "pseudonym": loan.pseudonym, "status": "DEFAULTED"}
               and r["reason"] == "default" and r["revealedAt"] for r in rows)
    # newest first, and the two pages are exactly the one long page
    everything = gql(REVEALS, {"first": 10}, token=token)["data"]["loanReveals"]["edges"]
    assert [e["cursor"] for e in first["edges"] + rest["edges"]] == [e["cursor"] for e in everything]
    assert [decode_int_cursor(e["cursor"], kind="loan-reveal") for e in everything] == list(
        RevealAudit.objects.order_by("-id").values_list("id", flat=True))
    # a cursor from another list is refused, not silently used
    arrears_cursor = encode_cursor("loan-arrears", 1)
    wrong = gql(REVEALS, {"first": 1, "after": arrears_cursor}, token=token)
    assert wrong["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


def test_staff_page_through_arrears(gql, people):
    loans = []
    for n in range(3):
        loan = request(people["borrower"], people["circle"], term_months=2, amount=100 * YUAN)
        services.pledge(lender=people["lenders"][n], loan_id=loan.pk, amount=100 * YUAN,
                        idempotency_key=f"arrears-pledge-{n}")
        loans.append(loan)
    due = loans[0].instalments.get(number=1).due_date
    services.scan_loans(today=due + dt.timedelta(days=5))
    as_of = dt.datetime.combine(due + dt.timedelta(days=5), dt.time(12), tzinfo=dt.UTC)
    staff, lender = staff_user(), people["lenders"][0]
    with clock.frozen_at(as_of):  # arrears are as of today; sign in that day too
        token, lender_token = token_for(staff), token_for(lender)
    query = ("query($after: String) { loanArrears(first: 2, after: $after) { edges { node { loan { id } "
             "daysOverdue bucket } } pageInfo { hasNextPage endCursor } } }")
    seen, after = [], None
    for _ in range(3):
        with clock.frozen_at(as_of):
            page = gql(query, {"after": after}, token=token)["data"]["loanArrears"]
        seen += [e["node"] for e in page["edges"]]
        after = page["pageInfo"]["endCursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
    assert sorted(r["loan"]["id"] for r in seen) == sorted(encode_id("MyLoan", loan.pk) for loan in loans)
    assert {(r["bucket"], r["daysOverdue"] > 0) for r in seen} == {("1-30", True)}
    with clock.frozen_at(as_of):
        refused = gql(query, {"after": None}, token=lender_token)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_admin_shows_the_reveal_audit_read_only(ops, people):
    client, _staff = ops
    loan = defaulted_loan(people)
    page = client.get("/admin/loans/revealaudit/")
    assert page.status_code == 200
    text = page.content.decode()
    # one row per reveal: the three lenders and the circle, each naming the loan and the revealed borrower
    assert text.count(f"loan #{loan.pk} ") == RevealAudit.objects.count() == 4
    assert text.count(people["borrower"].display_name) >= 4 and people["circle"].name in text
    assert all(lender.display_name in text for lender in people["lenders"])
    one = RevealAudit.objects.filter(loan=loan, to_user__isnull=False).first()
    detail = client.get(f"/admin/loans/revealaudit/{one.pk}/change/")
    assert detail.status_code == 200 and one.to_user.display_name in detail.content.decode()
    assert client.get("/admin/loans/revealaudit/add/").status_code == 403
    assert client.post(f"/admin/loans/revealaudit/{one.pk}/change/", {"reason": "changed"}).status_code == 403
    assert client.post(f"/admin/loans/revealaudit/{one.pk}/delete/", {"post": "yes"}).status_code == 403
    one.refresh_from_db()
    assert one.reason == "default" and RevealAudit.objects.filter(pk=one.pk).exists()
