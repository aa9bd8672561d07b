"""GraphQL for loans. Two views of one loan: `MyLoan` for its borrower (everything, with the schedule) and
`LoanRequest` for co-members of the circles it is shown in — anonymous until a default: a per-loan pseudonym,
bucketed trust, dates without times, no borrower field (it resolves only once the loan has defaulted and the
reveal is audited). Thin: services decide, selectors scope."""

from __future__ import annotations

import graphene

from backend.accounts.schema import User
from backend.core import nodes, pagination
from backend.core.errors import PermissionDenied
from backend.core.graphql import BaseMutation, register_app_errors, require_user
from backend.core.ids import decode_id, encode_id, fetch_scoped
from backend.core.pagination import page_size
from backend.wallet.schema import Fen

from . import selectors, services
from .models import Loan as LoanModel
from .models import Pledge as PledgeModel
from .models import RevealAudit
from .views import trust_bands

PAGE = f"Page size, 1-{pagination.MAX_PAGE_SIZE}"

LoanError = register_app_errors("Loan", "backend.loans", include=("backend.wallet", "backend.circles",
                                                                   "backend.referrals", "backend.chat"))


class RepaymentMethod(graphene.Enum):
    EQUAL_INSTALMENT = "equal_instalment"
    EQUAL_PRINCIPAL = "equal_principal"
    BULLET = "bullet"


class LoanStatus(graphene.Enum):
    FUNDING = "funding"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    ACTIVE = "active"
    REPAID = "repaid"
    DEFAULTED = "defaulted"
    WRITTEN_OFF = "written_off"


def _plain(value: object) -> object:
    return getattr(value, "value", value)


class TrustBandsType(graphene.ObjectType):
    class Meta:
        name = "LoanTrustBands"

    tenure = graphene.String(required=True, description="<3m, 3-12m, 1-3y or 3y+ in that circle.")
    verified = graphene.Boolean(required=True)
    vouches = graphene.String(required=True)
    repaid_on_time = graphene.String(required=True)
    ever_late = graphene.Boolean(required=True)
    ever_defaulted = graphene.Boolean(required=True)
    score_band = graphene.String(required=True)


class LoanCircleRef(graphene.ObjectType):
    circle_id = graphene.ID(required=True)
    name = graphene.String(required=True)


class _LoanTerms:
    amount = graphene.Field(Fen, required=True)
    term_months = graphene.Int(required=True)
    rate_bp = graphene.Int(required=True)
    method = graphene.Field(RepaymentMethod, required=True)
    purpose = graphene.String(required=True)
    pseudonym = graphene.String(required=True)
    anonymous = graphene.Boolean(required=True)
    status = graphene.Field(LoanStatus, required=True)
    funded = graphene.Field(Fen, required=True)
    remaining = graphene.Field(Fen, required=True)
    funding_deadline = graphene.Date(required=True, description="The day funding closes (no time of day).")

    @staticmethod
    def resolve_method(root, info):
        return _plain(root.method)

    @staticmethod
    def resolve_status(root, info):
        return _plain(root.status)

    @staticmethod
    def resolve_remaining(root, info):
        return root.amount - root.funded

    @staticmethod
    def resolve_funding_deadline(root, info):
        return root.funding_deadline.date()


class LoanRequest(_LoanTerms, graphene.ObjectType):
    """A request or loan as a co-member (lender) sees it."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    trust = graphene.Field(TrustBandsType, description="The borrower's trust in the first circle you share, "
                                                       "bucketed.")
    circles = graphene.List(graphene.NonNull(LoanCircleRef), required=True, first=graphene.Int(default_value=10),
                            description="The circles of this request you belong to.")
    my_pledged = graphene.Field(Fen, required=True)
    borrower = graphene.Field(User, description="Only for a named request, or after a default (audited).")

    @staticmethod
    def resolve_trust(root, info):
        viewer = info.context.user
        circle_id = selectors.shared_circle_id(root, viewer.pk)
        return trust_bands(root.borrower_id, circle_id) if circle_id else None

    @staticmethod
    def resolve_circles(root, info, first=10):
        viewer = info.context.user
        rows = root.shown_in.filter(circle__members__user_id=viewer.pk, circle__members__left_at__isnull=True) \
            .select_related("circle").order_by("circle_id")
        return [LoanCircleRef(circle_id=encode_id("Circle", r.circle_id), name=r.circle.name)
                for r in rows[:page_size(first, default=10)]]

    @staticmethod
    def resolve_my_pledged(root, info):
        return sum(PledgeModel.objects.filter(loan=root, lender=info.context.user)
                   .exclude(status="voided").values_list("amount", flat=True))

    @staticmethod
    def resolve_borrower(root, info):
        viewer = info.context.user
        if not root.anonymous or root.borrower_id == viewer.pk \
                or RevealAudit.objects.filter(loan=root, to_user=viewer).exists():
            return root.borrower
        return None


class InstalmentType(graphene.ObjectType):
    class Meta:
        name = "LoanInstalment"

    number = graphene.Int(required=True)
    due_date = graphene.Date(required=True)
    principal = graphene.Field(Fen, required=True)
    interest = graphene.Field(Fen, required=True)
    penalty = graphene.Field(Fen, required=True)
    paid = graphene.Field(Fen, required=True)
    outstanding = graphene.Field(Fen, required=True)
    settled = graphene.Boolean(required=True)

    @staticmethod
    def resolve_paid(root, info):
        return root.paid_principal + root.paid_interest + root.paid_penalty

    @staticmethod
    def resolve_outstanding(root, info):
        return root.due

    @staticmethod
    def resolve_settled(root, info):
        return root.paid_at is not None


class MyLoan(_LoanTerms, graphene.ObjectType):
    """A request or loan as its borrower sees it."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    lender_count = graphene.Int(required=True)
    instalments = graphene.List(graphene.NonNull(InstalmentType), required=True,
                                first=graphene.Int(default_value=60), description="The schedule (≤ 60 lines).")
    payoff_amount = graphene.Field(Fen, required=True, description="What settles the loan today (0 if none).")
    disbursed_on = graphene.Date()

    @staticmethod
    def resolve_lender_count(root, info):
        return root.pledges.exclude(status="voided").values("lender_id").distinct().count()

    @staticmethod
    def resolve_instalments(root, info, first=60):
        return list(root.instalments.order_by("number")[:page_size(first, default=60)])

    @staticmethod
    def resolve_payoff_amount(root, info):
        if root.status not in (LoanModel.Status.ACTIVE, LoanModel.Status.DEFAULTED, LoanModel.Status.WRITTEN_OFF):
            return 0
        return services.payoff_amount(root)

    @staticmethod
    def resolve_disbursed_on(root, info):
        return root.disbursed_at.date() if root.disbursed_at else None


class LoanPledge(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    loan = graphene.Field(LoanRequest, required=True)
    amount = graphene.Field(Fen, required=True)
    status = graphene.String(required=True)
    received = graphene.Field(Fen, required=True)
    boost_received = graphene.Field(Fen, required=True)

    @staticmethod
    def resolve_status(root, info):
        return _plain(root.status)


class CircleExposure(graphene.ObjectType):
    circle_id = graphene.ID(required=True)
    name = graphene.String(required=True)
    outstanding_principal = graphene.Field(Fen, required=True)


CircleExposureConnection = pagination.connection_type(CircleExposure, name="CircleExposure")


class LendingPortfolio(graphene.ObjectType):
    pledged = graphene.Field(Fen, required=True)
    outstanding_principal = graphene.Field(Fen, required=True)
    expected = graphene.Field(Fen, required=True, description="Your share of every scheduled instalment.")
    received = graphene.Field(Fen, required=True)
    boost_received = graphene.Field(Fen, required=True)
    realised_xirr = graphene.Float(description="Annualised yield of the cash flows so far; null before any.")
    exposure = graphene.Field(CircleExposureConnection, required=True, first=graphene.Int(default_value=20),
                              after=graphene.String(), description="Outstanding principal per circle, by circle.")

    @staticmethod
    def resolve_exposure(root, info, first=20, after=None):
        rows = [CircleExposure(circle_id=encode_id("Circle", cid), name=name, outstanding_principal=amount)
                for cid, name, amount in root.exposure]
        return _by_position(CircleExposureConnection, rows, first=first, after=after, kind="loan-exposure",
                            default=20)


class LoanArrears(graphene.ObjectType):
    loan = graphene.Field(MyLoan, required=True)
    borrower = graphene.Field(User, required=True)
    days_overdue = graphene.Int(required=True)
    bucket = graphene.String(required=True)
    outstanding = graphene.Field(Fen, required=True)

    @staticmethod
    def resolve_borrower(root, info):
        return root.loan.borrower


class LoanReveal(graphene.ObjectType):
    """One audited reveal of a defaulted borrower's identity: to a lender, or to a circle (its 公开通报)."""

    loan = graphene.Field(MyLoan, required=True)
    borrower = graphene.Field(User, required=True, description="Whose identity was revealed.")
    to_user = graphene.Field(User, description="The lender told, for a reveal to a lender.")
    to_circle = graphene.Field(LoanCircleRef, description="The circle told, for a reveal to a circle.")
    reason = graphene.String(required=True, description="Why: `default` (the loan defaulted).")
    revealed_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_borrower(root, info):
        return root.revealed_user

    @staticmethod
    def resolve_to_circle(root, info):
        if root.to_circle_id is None:
            return None
        return LoanCircleRef(circle_id=encode_id("Circle", root.to_circle_id), name=root.to_circle.name)


MyLoanConnection = pagination.connection_type(MyLoan, name="MyLoan")
LoanRequestConnection = pagination.connection_type(LoanRequest, name="LoanRequest")
LoanPledgeConnection = pagination.connection_type(LoanPledge, name="LoanPledge")
LoanArrearsConnection = pagination.connection_type(LoanArrears, name="LoanArrears")
LoanRevealConnection = pagination.connection_type(LoanReveal, name="LoanReveal")


def _by_id(connection, rows, *, first, after, kind: str, default: int):
    """One page of a queryset ordered newest first (`-id`), keyed by id: `<kind>:<id>` cursors."""
    size = page_size(first, default=default)
    after_id = pagination.decode_int_cursor(after, kind=kind)
    if after_id is not None:
        rows = rows.filter(id__lt=after_id)
    rows = list(rows[:size + 1])
    edges = [connection.Edge(cursor=pagination.encode_cursor(kind, row.pk), node=row) for row in rows[:size]]
    return connection(edges=edges, page_info=pagination.page_info(edges, has_next=len(rows) > size,
                                                                  has_previous=after_id is not None))


def _by_position(connection, rows: list, *, first, after, kind: str, default: int):
    """One page of a list computed in memory (arrears by days overdue, exposure by circle): `<kind>:<offset>`."""
    size = page_size(first, default=default)
    start = pagination.decode_int_cursor(after, kind=kind) or 0
    window = rows[start:start + size + 1]
    edges = [connection.Edge(cursor=pagination.encode_cursor(kind, start + i + 1), node=row)
             for i, row in enumerate(window[:size])]
    return connection(edges=edges, page_info=pagination.page_info(edges, has_next=len(window) > size,
                                                                  has_previous=start > 0))


def _require_staff(info) -> None:
    if not require_user(info).is_staff:
        raise PermissionDenied()


nodes.register(LoanRequest, model=LoanModel, scoped=lambda user: selectors.loans_visible_to(user.pk))
nodes.register(MyLoan, model=LoanModel, scoped=lambda user: selectors.my_loans(user.pk))
nodes.register(LoanPledge, model=PledgeModel, scoped=lambda user: selectors.my_pledges(user.pk))


class Query(graphene.ObjectType):
    my_loans = graphene.Field(MyLoanConnection, required=True, first=graphene.Int(default_value=5),
                              after=graphene.String(), description=f"Newest first. {PAGE} (default 5).")
    loan_requests_for_me = graphene.Field(LoanRequestConnection, required=True, first=graphene.Int(default_value=10),
                                          after=graphene.String(),
                                          description="Open requests in your circles (not your own), newest "
                                                      f"first. {PAGE} (default 10).")
    my_pledges = graphene.Field(LoanPledgeConnection, required=True, first=graphene.Int(default_value=10),
                                after=graphene.String(), description=f"Newest first. {PAGE} (default 10).")
    loan_request = graphene.Field(LoanRequest, id=graphene.ID(required=True))
    my_lending_portfolio = graphene.Field(LendingPortfolio, required=True)
    loan_arrears = graphene.Field(LoanArrearsConnection, required=True, first=graphene.Int(default_value=20),
                                  after=graphene.String(),
                                  description=f"Staff only: oldest arrears first. {PAGE} (default 20).")
    loan_reveals = graphene.Field(LoanRevealConnection, required=True, first=graphene.Int(default_value=20),
                                  after=graphene.String(),
                                  description="Staff only: every audited reveal of a defaulted borrower's identity "
                                              f"(to whom, when, why), newest first. {PAGE} (default 20).")

    @staticmethod
    def resolve_my_loans(root, info, first=5, after=None):
        return _by_id(MyLoanConnection, selectors.my_loans(require_user(info).pk), first=first, after=after,
                      kind="my-loan", default=5)

    @staticmethod
    def resolve_loan_requests_for_me(root, info, first=10, after=None):
        return _by_id(LoanRequestConnection, selectors.open_requests_for(require_user(info).pk), first=first,
                      after=after, kind="loan-request", default=10)

    @staticmethod
    def resolve_my_pledges(root, info, first=10, after=None):
        return _by_id(LoanPledgeConnection, selectors.my_pledges(require_user(info).pk), first=first, after=after,
                      kind="loan-pledge", default=10)

    @staticmethod
    def resolve_loan_request(root, info, id):
        user = require_user(info)
        return selectors.loans_visible_to(user.pk).filter(pk=_loan_pk(id, "LoanRequest", "id")).first()

    @staticmethod
    def resolve_my_lending_portfolio(root, info):
        return selectors.portfolio(require_user(info).pk)

    @staticmethod
    def resolve_loan_arrears(root, info, first=20, after=None):
        _require_staff(info)
        return _by_position(LoanArrearsConnection, selectors.arrears(), first=first, after=after,
                            kind="loan-arrears", default=20)

    @staticmethod
    def resolve_loan_reveals(root, info, first=20, after=None):
        _require_staff(info)
        return _by_id(LoanRevealConnection, selectors.reveals(), first=first, after=after, kind="loan-reveal",
                      default=20)


def _loan_pk(value: object, type_name: str, field: str) -> int:
    return decode_id(value, type_name=type_name, field=field)


class CreateLoanRequest(BaseMutation):
    """Ask co-members of some of your circles for a loan (anonymous unless you choose otherwise)."""

    class Arguments:
        amount = Fen(required=True)
        term_months = graphene.Int(required=True)
        rate_bp = graphene.Int(required=True)
        method = RepaymentMethod(required=True)
        purpose = graphene.String(required=True)
        circle_ids = graphene.List(graphene.NonNull(graphene.ID), required=True)
        funding_days = graphene.Int(required=True)
        anonymous = graphene.Boolean(default_value=True)

    loan = graphene.Field(MyLoan)

    @classmethod
    def perform(cls, root, info, circle_ids, method, **kwargs):
        user = require_user(info)
        pks = [decode_id(c, type_name="Circle", field="circleIds") for c in circle_ids]
        return {"loan": services.create_loan_request(borrower=user, circle_ids=pks, method=_plain(method),
                                                     **kwargs)}


class CancelLoanRequest(BaseMutation):
    class Arguments:
        loan_id = graphene.ID(required=True)

    loan = graphene.Field(MyLoan)

    @classmethod
    def perform(cls, root, info, loan_id):
        user = require_user(info)
        loan = fetch_scoped(loan_id, type_name="MyLoan", field="loanId", scoped=selectors.my_loans(user.pk))
        return {"loan": services.cancel_loan_request(borrower=user, loan_id=loan.pk)}


class PledgeToLoan(BaseMutation):
    """Lend part of a request: held on your wallet until it is fully funded (then lent) or closes (released)."""

    class Arguments:
        loan_id = graphene.ID(required=True)
        amount = Fen(required=True)
        idempotency_key = graphene.String(required=True)

    pledge = graphene.Field(LoanPledge)
    loan = graphene.Field(LoanRequest)

    @classmethod
    def perform(cls, root, info, loan_id, amount, idempotency_key):
        user = require_user(info)
        loan = fetch_scoped(loan_id, type_name="LoanRequest", field="loanId",
                            scoped=selectors.loans_visible_to(user.pk))
        made = services.pledge(lender=user, loan_id=loan.pk, amount=amount, idempotency_key=idempotency_key)
        loan.refresh_from_db()
        return {"pledge": made, "loan": loan}


class RepayLoan(BaseMutation):
    """Repay: penalty, then interest, then principal; the payoff amount settles early (interest to date)."""

    class Arguments:
        loan_id = graphene.ID(required=True)
        amount = Fen(required=True)
        idempotency_key = graphene.String(required=True)

    loan = graphene.Field(MyLoan)
    amount = graphene.Field(Fen)

    @classmethod
    def perform(cls, root, info, loan_id, amount, idempotency_key):
        user = require_user(info)
        loan = fetch_scoped(loan_id, type_name="MyLoan", field="loanId", scoped=selectors.my_loans(user.pk))
        repayment = services.repay(borrower=user, loan_id=loan.pk, amount=amount, idempotency_key=idempotency_key)
        loan.refresh_from_db()
        return {"loan": loan, "amount": repayment.amount}


class Mutation(graphene.ObjectType):
    create_loan_request = CreateLoanRequest.Field()
    cancel_loan_request = CancelLoanRequest.Field()
    pledge_to_loan = PledgeToLoan.Field()
    repay_loan = RepayLoan.Field()
