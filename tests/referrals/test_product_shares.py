"""A client manager sharing a product card through advisors feeds the referral funnel (core.share_hooks): the
share counts on the sharer's code for the campaign configured for that product, the card carries the code, and
the clicks and sign-ups from it are traced to that share (CITIC: every share traced to its result)."""

from __future__ import annotations

from backend.advisors import services as advisors
from backend.advisors.models import CustomerRecord, Product, ProductShare
from backend.chat import events
from backend.chat.models import Message
from backend.referrals import selectors, services
from backend.referrals.models import Attribution, ShareCode
from tests.advisors.conftest import assign, new_manager
from tests.conftest import open_direct_between_friends

from .conftest import after_holding, make_campaign, new_user, pledge


def product_named(name: str) -> Product:
    return Product.objects.create(name=name, kind="wealth", risk_level=2, expected_yield_bps=310,
                                  min_amount=100_000, detail_url="https://bank.example/p/90")


def advisor_conversation(customer, manager) -> int:
    """The customer is assigned to the manager; their advisor conversation."""
    assign(customer, manager)
    return CustomerRecord.objects.get(customer=customer).conversation_id


def share(manager, product, conversation_id, key):
    result = advisors.share_product(user=manager, product=product, conversation_id=conversation_id,
                                    client_msg_id=key)
    return events.card_document(Message.objects.get(pk=result.message.pk))


def test_a_managers_product_share_is_traced_from_share_to_reward(budget):
    product = product_named("稳健理财 90天")
    campaign = make_campaign(name="90天理财推荐", scope="lending:wealth90", shared_product_id=product.pk)
    make_campaign(name="another product", shared_product_id=product_named("other").pk)
    manager, customer = new_manager("Mia", branch="Haidian"), new_user("Ann")
    conversation_id = advisor_conversation(customer, manager)
    card = share(manager, product, conversation_id, "share-1")
    code = ShareCode.objects.get(owner=manager)
    assert (code.campaign, code.channel, code.is_staff, code.share_count) == (campaign, "chat", True, 1)
    assert card["referral_code"] == code.code and card["title"] == "稳健理财 90天"
    assert ProductShare.objects.get().referral_code == code.code
    # Sharing again counts again on the same code; a replay of one share (same client message id) does not.
    share(manager, product, conversation_id, "share-2")
    share(manager, product, conversation_id, "share-2")
    code.refresh_from_db()
    assert code.share_count == 2 and ProductShare.objects.count() == 2

    # Ann forwards it; a friend of hers opens the card's link and signs up with the code on it.
    services.record_click(code=card["referral_code"], device_id="friend-phone-1", client_ip="127.0.0.1")
    friend = new_user("Bo")
    attribution = services.claim_referral(user=friend, code=card["referral_code"], device_id="friend-phone-1")
    assert (attribution.referrer, attribution.campaign) == (manager, campaign)
    pledge(friend)
    after_holding(campaign)
    funnel = selectors.funnel_of(ShareCode.objects.filter(owner=manager))
    assert (funnel.shares, funnel.clicks, funnel.signups, funnel.qualified, funnel.rewarded) == (2, 1, 1, 1, 1)
    board = selectors.staff_leaderboard(campaign)
    assert [(r.display_name, r.branch, r.funnel.rewarded) for r in board] == [("Mia", "Haidian", 1)]
    assert Attribution.objects.get(referee=friend).share_code == code


def test_a_product_without_a_campaign_is_shared_as_before(budget):
    product = product_named("定期存款")
    manager, customer = new_manager("Max"), new_user("Cy")
    card = share(manager, product, advisor_conversation(customer, manager), "share-9")
    assert "referral_code" not in card and not ShareCode.objects.exists()
    assert ProductShare.objects.get().referral_code == ""


def test_a_customer_passing_a_product_on_gets_their_own_code(budget):
    product = product_named("稳健理财 180天")
    campaign = make_campaign(shared_product_id=product.pk)
    ann, bo = new_user("Ann"), new_user("Bo")
    direct = open_direct_between_friends(ann, bo)
    card = share(ann, product, direct.pk, "ann-share-1")
    code = ShareCode.objects.get(owner=ann)
    assert (code.campaign, code.is_staff, card["referral_code"]) == (campaign, False, code.code)
