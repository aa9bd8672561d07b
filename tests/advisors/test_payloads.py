"""Every field of every advisors mutation payload renders (the walk of tests/core/test_mutation_payloads.py,
for the mutations that need a client manager, a product catalog and service accounts set up first)."""

import pytest

from backend.accounts.ids import user_gid
from backend.advisors import services
from backend.core.ids import encode_id
from tests.chat.conftest import token_for
from tests.core.test_mutation_payloads import Runner, lit

from .conftest import new_manager, new_user

pytestmark = pytest.mark.django_db

ADVISORS_MUTATIONS = (
    "openMyClientManager", "requestDifferentManager", "addCustomerNote", "setCustomerTags", "createQuickReply",
    "sendQuickReply", "deleteQuickReply", "sendProductCard", "shareProduct", "setOfficeHours",
    "subscribeServiceAccount", "unsubscribeServiceAccount", "sendBroadcast",
)


def test_every_advisors_payload_renders(gql, product, django_capture_on_commit_callbacks):
    run = Runner(gql)
    managers = {name: new_manager(name) for name in ("Mia", "Max")}
    ann = new_user("Ann")
    offers = services.create_service_account(slug="offers", name="Offers", category="marketing")
    customer = token_for(ann)

    mine = run("openMyClientManager", token=customer)["myClientManager"]
    assert mine["conversation"]["kind"] == "ADVISOR"
    other = run("requestDifferentManager", 'reason: "prefer mornings"', token=customer)["myClientManager"]
    assert other["manager"]["displayName"] != mine["manager"]["displayName"]
    manager = token_for(managers[other["manager"]["displayName"]])
    c = lit(user_gid(ann))
    assert run("addCustomerNote", f'customerId: {c}, body: "likes funds"', token=manager)["note"]["body"]
    assert run("setCustomerTags", f'customerId: {c}, tags: ["vip"]', token=manager)["tags"] == ["vip"]
    quick = run("createQuickReply", 'title: "hi", text: "Hello!"', token=manager)["quickReply"]
    run("sendQuickReply", f'customerId: {c}, quickReplyId: {lit(quick["id"])}, clientMsgId: "q1"', token=manager)
    run("deleteQuickReply", f'quickReplyId: {lit(quick["id"])}', token=manager)
    p = lit(encode_id("Product", product.pk))
    card = run("sendProductCard", f'customerId: {c}, productId: {p}, clientMsgId: "p1"', token=manager)["message"]
    assert card["card"]["kind"] == "product"
    run("shareProduct", f"productId: {p}, conversationId: {lit(mine['conversation']['id'])}, clientMsgId: \"s1\"",
        token=customer)
    run("setOfficeHours", 'days: [0, 1], opens: "09:00:00", closes: "17:00:00", timezone: "Asia/Shanghai"',
        token=manager)
    a = lit(encode_id("ServiceAccount", offers.pk))
    assert run("subscribeServiceAccount", f"serviceAccountId: {a}", token=customer)["serviceAccount"]["subscribed"]
    run("unsubscribeServiceAccount", f"serviceAccountId: {a}", token=customer)
    with django_capture_on_commit_callbacks(execute=True):
        sent = run("sendBroadcast", f'serviceAccountId: {a}, text: "hello", target: LIST, userIds: [{c}]',
                   token=manager)["broadcast"]
    assert sent["target"] == "LIST"
    assert sorted(run.seen) == sorted(ADVISORS_MUTATIONS)
