"""Service accounts: verified senders; marketing ones can be unsubscribed, security ones cannot; login alerts
come from the Security account."""

import pytest

from backend.accounts import signals
from backend.advisors import services
from backend.advisors.models import Subscription
from backend.chat import selectors as chat_selectors
from backend.core.ids import encode_id
from tests.chat.conftest import token_for

from .conftest import new_user

pytestmark = pytest.mark.django_db

UNSUBSCRIBE = """mutation($a: ID!) { unsubscribeServiceAccount(serviceAccountId: $a) {
  serviceAccount { name subscribed mayUnsubscribe } errors { code } } }"""
SUBSCRIBE = """mutation($a: ID!) { subscribeServiceAccount(serviceAccountId: $a) {
  serviceAccount { subscribed } errors { code } } }"""
LIST = "query { serviceAccounts { name category subscribed mayUnsubscribe sender { isVerified } } }"


@pytest.fixture
def accounts(db):
    return (services.create_service_account(slug="security", name="Security", category="security"),
            services.create_service_account(slug="offers", name="Wealth offers", category="marketing"),
            services.create_service_account(slug="wallet", name="Wallet", category="service"))


def test_marketing_may_be_unsubscribed_security_and_service_may_not(gql, accounts):
    security, offers, wallet = accounts
    ann = new_user("Ann")
    token = token_for(ann)
    services.post_notice(account=offers, user_id=ann.pk, key="o1", text="3.1% for 90 days")
    result = gql(UNSUBSCRIBE, {"a": encode_id("ServiceAccount", offers.pk)}, token=token)["data"][
        "unsubscribeServiceAccount"]
    assert result == {"serviceAccount": {"name": "Wealth offers", "subscribed": False, "mayUnsubscribe": True},
                      "errors": []}
    with pytest.raises(services.Unsubscribed):
        services.post_notice(account=offers, user_id=ann.pk, key="o2", text="another offer")
    for account in (security, wallet):
        refused = gql(UNSUBSCRIBE, {"a": encode_id("ServiceAccount", account.pk)}, token=token)["data"][
            "unsubscribeServiceAccount"]
        assert refused["errors"] == [{"code": "CANNOT_UNSUBSCRIBE"}]
        services.post_notice(account=account, user_id=ann.pk, key=f"n-{account.slug}", text="notice")
    assert not Subscription.objects.filter(user=ann, unsubscribed_at__isnull=False).exclude(service_account=offers)
    assert gql(SUBSCRIBE, {"a": encode_id("ServiceAccount", offers.pk)}, token=token)["data"][
        "subscribeServiceAccount"]["serviceAccount"] == {"subscribed": True}
    services.post_notice(account=offers, user_id=ann.pk, key="o3", text="welcome back")
    listed = {row["name"]: row for row in gql(LIST, token=token)["data"]["serviceAccounts"]}
    assert listed["Security"] == {"name": "Security", "category": "SECURITY", "subscribed": True,
                                  "mayUnsubscribe": False, "sender": {"isVerified": True}}


def test_subscriber_cannot_post_into_a_service_conversation(accounts):
    from backend.chat.services import ReadOnlyConversation, send_message

    _, _, wallet = accounts
    ann = new_user("Ann")
    result = services.post_notice(account=wallet, user_id=ann.pk, key="w1", text="Your statement is ready")
    with pytest.raises(ReadOnlyConversation):
        send_message(conversation_id=result.message.conversation_id, sender=ann, client_msg_id="x", text="hi")


def test_login_alert_arrives_from_the_security_account(accounts):
    security = accounts[0]
    ann = new_user("Ann")
    signals.announce(user_id=ann.pk, event=signals.NEW_DEVICE_SIGN_IN, device_name="Pixel 9")
    subscription = Subscription.objects.get(user=ann, service_account=security)
    seat = chat_selectors.seat_of(ann.pk, subscription.conversation_id)
    (message,) = chat_selectors.history(seat)[0]
    assert message.sender_id == security.user_id and "Pixel 9" in message.body
    assert chat_selectors.title_of(seat) == "Security"


def _security_history(account, user):
    subscription = Subscription.objects.filter(user=user, service_account=account).first()
    if subscription is None:
        return []
    return chat_selectors.history(chat_selectors.seat_of(user.pk, subscription.conversation_id))[0]


def _top_up(user, amount: int, key: str):
    """Credit the user's wallet from the external bank through the real ledger; returns the wallet."""
    from backend.wallet import services as wallet_services
    from backend.wallet.models import LedgerAccount

    wallet = wallet_services.ensure_wallet(user_id=user.pk)
    bank = wallet_services.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet_services.transfer(source_id=bank.pk, destination_id=wallet.pk, amount=amount, idempotency_key=key,
                             kind="top_up")
    return wallet


def test_balance_alert_arrives_from_the_security_account_after_the_money_moves(
        accounts, django_capture_on_commit_callbacks):
    from backend.wallet.services import ALERT_TITLE

    security = accounts[0]
    ann = new_user("Ann")
    with django_capture_on_commit_callbacks(execute=True):
        _top_up(ann, 12345, "advisors:balance-alert")
    (message,) = _security_history(security, ann)
    assert message.sender_id == security.user_id
    assert ALERT_TITLE in message.body and "123.45" in message.body


def test_a_failed_security_post_never_undoes_the_money_movement(accounts, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    def broken(**kwargs):
        raise RuntimeError("chat is down")

    monkeypatch.setattr(services, "post_notice", broken)
    ann = new_user("Ann")
    with django_capture_on_commit_callbacks(execute=True):
        wallet = _top_up(ann, 500, "advisors:balance-alert-broken")
    wallet.refresh_from_db()
    assert wallet.balance == 500
    assert _security_history(accounts[0], ann) == []


def test_a_rolled_back_movement_posts_no_security_message(accounts, django_capture_on_commit_callbacks):
    from django.db import transaction

    ann = new_user("Ann")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            _top_up(ann, 500, "advisors:balance-alert-rolled-back")
            raise RuntimeError("the caller failed after the transfer")
    assert _security_history(accounts[0], ann) == []


def test_without_a_security_account_a_money_movement_asks_once_and_posts_nothing(
        django_capture_on_commit_callbacks):
    """No Security account yet: after the movement commits, advisors asks one small question and posts nothing.
    The answer is remembered for a few seconds (the next movement asks nothing); the account operations create
    next is still heard of by the very next movement on this node."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ann = new_user("Ann")

    def questions_after(key: str) -> list[str]:
        with CaptureQueriesContext(connection) as ctx:
            with django_capture_on_commit_callbacks(execute=False) as callbacks:
                _top_up(ann, 100, key)
            during = len(ctx.captured_queries)
            for callback in callbacks:
                if "advisors.balance_notices" in getattr(callback, "__qualname__", ""):
                    callback()
        return [q["sql"] for q in ctx.captured_queries[during:]]

    asked = questions_after("advisors:no-security-yet")
    assert len(asked) == 1 and "advisors_serviceaccount" in asked[0], asked
    assert questions_after("advisors:no-security-still") == []  # remembered
    assert not Subscription.objects.filter(user=ann).exists()

    security = services.create_service_account(slug="security", name="Security", category="security")
    with django_capture_on_commit_callbacks(execute=True):
        _top_up(ann, 250, "advisors:security-now")
    (message,) = _security_history(security, ann)
    assert "2.50" in message.body
