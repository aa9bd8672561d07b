"""Customer tiers computed nightly from the documented rules (advisors.services.tiers), shown to managers and
usable to target broadcasts."""

import datetime as dt

import pytest

from backend.advisors import services
from backend.advisors.models import CustomerRecord
from backend.chat import services as chat_services
from backend.core import clock, customer_metrics, user_lookups
from backend.notifications import schedule
from tests.chat.conftest import token_for
from tests.payments.conftest import fund

from .conftest import assign, new_manager, new_user, nodes_of

pytestmark = pytest.mark.django_db
YUAN = 100


@pytest.mark.parametrize(("inputs", "tier"), [
    ({"balance_fen": 500_000 * YUAN}, "core"),
    ({"balance_fen": 100_000 * YUAN, "loans_repaid": 2}, "core"),
    ({"balance_fen": 100_000 * YUAN, "referrals": 5}, "core"),
    ({"balance_fen": 100_000 * YUAN, "referrals": 4}, "important"),
    ({"balance_fen": 50_000 * YUAN}, "important"),
    ({"loans_repaid": 1}, "important"),
    ({"referrals": 2}, "important"),
    ({"messages_30d": 20}, "important"),
    ({"balance_fen": 50_000 * YUAN - 1, "messages_30d": 19, "referrals": 1}, "ordinary"),
])
def test_rules(inputs, tier):
    assert services.tier_for(**{"balance_fen": 0, "loans_repaid": 0, "referrals": 0, "messages_30d": 0,
                                **inputs}) == tier


def test_nightly_job_reads_wallet_balances_chat_activity_and_reported_measures(monkeypatch, gql):
    rich, chatty, referrer, plain = (new_user(n) for n in ("Rich", "Chatty", "Ref", "Plain"))
    fund(rich, 600_000 * YUAN)
    mia = new_manager("Mia")
    for customer in (rich, chatty, referrer, plain):
        assign(customer, mia)
    conversation_id = CustomerRecord.objects.get(customer=chatty).conversation_id
    with clock.shifted(-dt.timedelta(days=40)):  # old messages do not count
        for i in range(30):
            chat_services.send_message(conversation_id=conversation_id, sender=chatty, client_msg_id=f"old{i}", text="x")
    for i in range(20):
        chat_services.send_message(conversation_id=conversation_id, sender=chatty, client_msg_id=f"m{i}", text="x")
    monkeypatch.setitem(user_lookups._lookups, f"metric:{customer_metrics.REFERRALS}",
                        lambda ids: {referrer.pk: 2} if referrer.pk in ids else {})

    (run,) = schedule.run_due_jobs(["advisors.compute_tiers"])  # what beat runs nightly
    assert run.ok, run.error

    tiers = dict(CustomerRecord.objects.values_list("customer__display_name", "tier"))
    assert tiers == {"Rich": "core", "Chatty": "important", "Ref": "important", "Plain": "ordinary"}
    assert CustomerRecord.objects.get(customer=chatty).tier_inputs["messages_30d"] == 20
    shown = nodes_of(gql("query { myCustomers { edges { node { customer { displayName } tier } } } }", token=token_for(mia))["data"]["myCustomers"])
    assert {row["customer"]["displayName"]: row["tier"] for row in shown}["Rich"] == "CORE"
    assert services.compute_tiers() == 0  # idempotent: nothing changes on a second run
