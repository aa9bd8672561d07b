"""Loan node types refetch through node(id:) only for who may see them: a request for co-members of its circles,
a loan for its borrower, a pledge for its lender; anyone else gets null, exactly as for a missing id."""

from __future__ import annotations

import pytest

from backend.core.ids import encode_id
from backend.loans import services
from tests.chat.conftest import token_for

from .conftest import YUAN, people, request  # noqa: F401  (people is a fixture)

pytestmark = pytest.mark.django_db

NODE = "query($i: ID!) { node(id: $i) { __typename id } }"


def test_loan_nodes_are_scoped(gql, people):  # noqa: F811
    borrower, (ada, bob, _), outsider = people["borrower"], people["lenders"], people["outsider"]
    loan = request(borrower, people["circle"])
    pledge = services.pledge(lender=ada, loan_id=loan.pk, amount=100 * YUAN, idempotency_key="node-pledge-1")
    ids = {"LoanRequest": encode_id("LoanRequest", loan.pk), "MyLoan": encode_id("MyLoan", loan.pk),
           "LoanPledge": encode_id("LoanPledge", pledge.pk)}

    def seen_by(user) -> set[str]:
        token = token_for(user)
        return {name for name, gid in ids.items()
                if gql(NODE, {"i": gid}, token=token)["data"]["node"] == {"__typename": name, "id": gid}}

    assert seen_by(ada) == {"LoanRequest", "LoanPledge"}
    assert seen_by(bob) == {"LoanRequest"}
    assert seen_by(borrower) == {"LoanRequest", "MyLoan"}
    assert seen_by(outsider) == set()
