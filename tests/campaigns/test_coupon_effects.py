"""What a redeemed coupon does: a rate boost raises the lender's yield through referrals' boost machinery (loans
pays it on the next repayment), once; a fee waiver is refused (the app charges no fee) and stays unused.
Staff issue coupons to a customer (service, admin action, GraphQL), within stock and the per-user limit,
idempotently, with refusal codes."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from backend.accounts.models import User
from backend.campaigns import services
from backend.campaigns.models import Coupon, CouponGrant, CouponType
from backend.core import clock
from backend.core.ids import encode_id
from backend.core.models import AdminAuditEntry
from backend.loans import services as loans
from backend.loans.models import Pledge
from backend.referrals import selectors as referrals
from backend.referrals.models import RateBoost
from tests.loans.conftest import fund, people  # noqa: F401  (people: the loans fixture)
from tests.loans.test_arrears import active_loan

from .conftest import assert_ledgers_ok, error_code, make_coupon_type, new_user, set_tier

pytestmark = pytest.mark.django_db


def test_a_rate_boost_coupon_adds_its_bp_to_the_lenders_yield_once(people, budget):  # noqa: F811
    lender = people["lenders"][0]
    boost = make_coupon_type(kind=CouponType.Kind.RATE_BOOST, value=200, boost_days=90)
    coupon = services.claim_coupon(user=lender, coupon_type_id=boost.pk)
    assert referrals.active_boost_bp(lender, "lending") == 0
    redeemed, replayed = services.redeem_coupon(user=lender, coupon_id=coupon.pk, reference="loan:any")
    assert not replayed and redeemed.rate_boost is not None
    assert referrals.active_boost_bp(lender, "lending") == 200
    assert referrals.active_boost_bp(lender, "lending", at=clock.now() + dt.timedelta(days=91)) == 0
    # the same redemption again grants nothing more; another is refused
    assert services.redeem_coupon(user=lender, coupon_id=coupon.pk, reference="loan:any")[1] is True
    assert error_code(services.redeem_coupon, user=lender, coupon_id=coupon.pk, reference="x:2") == \
        "COUPON_ALREADY_REDEEMED"
    assert RateBoost.objects.filter(user=lender).count() == 1
    # loans pays it: the boosted lender gets 200/1000 of their interest share extra from the marketing budget
    loan = active_loan(people, term_months=2)
    inst = loan.instalments.get(number=1)
    fund(people["borrower"], inst.interest)
    loans.repay(borrower=people["borrower"], loan_id=loan.pk, amount=inst.principal + inst.interest,
                idempotency_key="repay-boosted")
    boosted = Pledge.objects.get(lender=lender)
    assert abs(boosted.boost_received - inst.interest * boosted.amount / loan.amount * 200 / 1000) <= 1
    assert boosted.boost_received > 0
    assert not Pledge.objects.exclude(pk=boosted.pk).filter(boost_received__gt=0).exists()
    assert_ledgers_ok()


def test_a_coupon_boost_stacks_above_a_referrer_already_at_the_referral_cap(db):
    ada, now = new_user(), clock.now()
    RateBoost.objects.create(user=ada, scope="lending", bp=300, cap_bp=300, starts_at=now,
                             ends_at=now + dt.timedelta(days=365))
    coupon = services.claim_coupon(user=ada, coupon_type_id=make_coupon_type(
        kind=CouponType.Kind.RATE_BOOST, value=50).pk)
    services.redeem_coupon(user=ada, coupon_id=coupon.pk, reference="loan:1")
    assert referrals.active_boost_bp(ada, "lending") == 350


def test_a_fee_waiver_is_refused_and_stays_usable_because_no_fee_exists(db, ops):
    ada = new_user()
    waiver = make_coupon_type(kind=CouponType.Kind.FEE_WAIVER, value=0)  # a legacy row: the admin refuses new ones
    coupon = services.claim_coupon(user=ada, coupon_type_id=waiver.pk)
    assert error_code(services.redeem_coupon, user=ada, coupon_id=coupon.pk, reference="w:1") == "NO_FEE_TO_WAIVE"
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.AVAILABLE and coupon.redeemed_at is None
    client, _ = ops
    page = client.post("/admin/campaigns/coupontype/add/", {
        "name": "免手续费", "kind": "fee_waiver", "value": 0, "stock": 10, "per_user_limit": 1,
        "valid_from_0": "2026-01-01", "valid_from_1": "00:00:00", "valid_until_0": "2027-01-01",
        "valid_until_1": "00:00:00", "claimable": "on", "boost_scope": "lending", "boost_days": 30})
    assert page.status_code == 200 and "charges no fee" in page.content.decode()
    assert not CouponType.objects.filter(name="免手续费").exists()


# --- staff issue coupons ------------------------------------------------------------------------------------


def _staff() -> User:
    staff = new_user("运营")
    staff.is_staff = True
    staff.save()
    return staff


def test_staff_issue_within_stock_and_limit_idempotently_with_refusal_codes(db):
    staff, ada, bob = _staff(), new_user(), new_user()
    kind = make_coupon_type(stock=2, per_user_limit=1, claimable=False)
    coupon, replayed = services.issue_coupon(staff=staff, user_id=ada.pk, coupon_type_id=kind.pk,
                                             reason="投诉补偿", idempotency_key="grant-0001")
    assert not replayed and coupon.owner == ada and coupon.source == Coupon.Source.ISSUED
    again, replayed = services.issue_coupon(staff=staff, user_id=ada.pk, coupon_type_id=kind.pk,
                                            reason="投诉补偿", idempotency_key="grant-0001")
    assert replayed and again.pk == coupon.pk
    grant = CouponGrant.objects.get()
    assert (grant.issued_by, grant.user, grant.reason) == (staff, ada, "投诉补偿")

    def code(**kw) -> str:
        args = {"staff": staff, "user_id": bob.pk, "coupon_type_id": kind.pk, "reason": "补偿",
                "idempotency_key": uuid.uuid4().hex} | kw
        return error_code(services.issue_coupon, **args)

    assert code(user_id=ada.pk) == "COUPON_LIMIT_REACHED"
    assert code(idempotency_key="grant-0001") == "REFERENCE_CONFLICT"  # the key names ada's grant
    assert code(staff=bob) == "STAFF_ONLY"
    assert code(reason="  ") == "REASON_REQUIRED"
    assert code(idempotency_key="x") == "IDEMPOTENCY_KEY_INVALID"
    assert code(user_id=10**9) == "NOT_FOUND"
    assert code(coupon_type_id=10**9) == "NOT_FOUND"
    assert code(coupon_type_id=make_coupon_type(valid_until=clock.now() - dt.timedelta(seconds=1),
                                                valid_from=clock.now() - dt.timedelta(days=1)).pk) == \
        "COUPON_NOT_AVAILABLE"
    assert code(coupon_type_id=make_coupon_type(eligible_tiers="core").pk) == "NOT_ELIGIBLE"
    services.issue_coupon(staff=staff, user_id=bob.pk, coupon_type_id=kind.pk, reason="补偿",
                          idempotency_key="grant-0002")
    assert code(user_id=new_user().pk) == "COUPON_OUT_OF_STOCK"
    kind.refresh_from_db()
    assert kind.claimed_count == 2 and Coupon.objects.filter(coupon_type=kind).count() == 2
    assert CouponGrant.objects.count() == 2


def test_the_admin_action_issues_once_per_page_and_is_audited(ops):
    client, staff = ops
    ada = new_user()
    kind = make_coupon_type(claimable=False, per_user_limit=3)
    form = {"action": "issue_to_customer", "_selected_action": [kind.pk], "user_id": ada.pk,
            "reason": "生日礼", "idempotency_key": "admin-page-1"}
    assert client.post("/admin/campaigns/coupontype/", form).status_code == 302
    assert client.post("/admin/campaigns/coupontype/", form).status_code == 302  # the same page submitted twice
    assert Coupon.objects.filter(owner=ada, coupon_type=kind).count() == 1
    grant = CouponGrant.objects.get()
    assert grant.issued_by_id == staff.pk and grant.reason == "生日礼"
    audit = AdminAuditEntry.objects.filter(action_name="issue_to_customer", object_id=str(kind.pk))
    assert audit.exists()
    assert audit.order_by("id").first().after.get("claimed_count") == 1
    refused = client.post("/admin/campaigns/coupontype/", {**form, "reason": "", "idempotency_key": "admin-page-2"},
                          follow=True)
    assert "REASON_REQUIRED" in refused.content.decode()
    assert Coupon.objects.filter(owner=ada).count() == 1


ISSUE = """mutation($t: ID!, $u: ID!, $k: String!) { issueCoupon(couponTypeId: $t, userId: $u, reason: "补偿",
  idempotencyKey: $k) { replayed coupon { id status couponType { name } } errors { code field } } }"""


def test_issue_coupon_mutation_is_staff_only(gql, sign_in):
    from backend.accounts.ids import user_gid

    kind = make_coupon_type(claimable=False)
    token = sign_in("+8613900000361")["tokens"]["accessToken"]
    customer = User.objects.order_by("-id").first()
    variables = {"t": encode_id("CouponType", kind.pk), "u": user_gid(customer), "k": "gql-grant-01"}
    refused = gql(ISSUE, variables, token=token)["data"]["issueCoupon"]
    assert refused["errors"] == [{"code": "STAFF_ONLY", "field": None}] and refused["coupon"] is None
    staff_token = sign_in("+8613900000362")["tokens"]["accessToken"]
    User.objects.filter(pk=User.objects.order_by("-id").first().pk).update(is_staff=True)
    issued = gql(ISSUE, variables, token=staff_token)["data"]["issueCoupon"]
    assert issued["errors"] == [] and issued["replayed"] is False
    assert issued["coupon"]["couponType"]["name"] == kind.name
    assert gql(ISSUE, variables, token=staff_token)["data"]["issueCoupon"]["replayed"] is True
    assert Coupon.objects.get().owner == customer
    # the customer now sees it among their coupons
    assert gql("{ myCoupons { id } }", token=token)["data"]["myCoupons"] == [{"id": issued["coupon"]["id"]}]


def test_tiers_come_from_advisors(db):
    ada = new_user()
    kind = make_coupon_type(eligible_tiers="important, core")
    assert error_code(services.claim_coupon, user=ada, coupon_type_id=kind.pk) == "NOT_ELIGIBLE"
    set_tier(ada, "important")
    assert services.claim_coupon(user=ada, coupon_type_id=kind.pk).owner == ada
