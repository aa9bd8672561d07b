"""The manager's side: my customers, the waiting queue, notes, quick replies, product cards — and that a
manager sees nothing of another manager's customers."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.accounts.ids import user_gid
from backend.advisors.models import CustomerRecord, ProductShare
from backend.chat import services as chat_services
from backend.core import clock
from backend.core.ids import encode_id
from tests.chat.conftest import token_for

from .conftest import assign, new_manager, new_user, nodes_of

pytestmark = pytest.mark.django_db


def conversation_of(customer) -> int:
    return CustomerRecord.objects.get(customer=customer).conversation_id


def say(user, conversation_id, text, key):
    return chat_services.send_message(conversation_id=conversation_id, sender=user, client_msg_id=key, text=text)


QUEUE = "query { waitingQueue { edges { node { customer { displayName } conversationId tier waitingSince unreadCount } } } }"
CUSTOMERS = "query { myCustomers { edges { node { customer { displayName } tier tags unreadCount lastContactAt waitingSince } } } }"


def test_waiting_queue_orders_by_waiting_time_and_drops_answered_conversations(gql):
    mia = new_manager("Mia")
    ann, bob, cyd, dan = (new_user(n) for n in ("Ann", "Bob", "Cyd", "Dan"))
    for c in (ann, bob, cyd, dan):
        assign(c, mia)
    say(bob, conversation_of(bob), "first", "b1")  # Bob has waited longest
    clock.advance(dt.timedelta(minutes=1))
    say(ann, conversation_of(ann), "second", "a1")
    clock.advance(dt.timedelta(minutes=1))
    say(cyd, conversation_of(cyd), "third", "c1")
    clock.advance(dt.timedelta(minutes=1))
    say(mia, conversation_of(cyd), "answered", "m1")  # Cyd got an answer: no longer waiting
    clock.advance(dt.timedelta(minutes=1))
    say(ann, conversation_of(ann), "again", "a2")  # Ann still waits since her first unanswered message
    token = token_for(mia)
    queue = nodes_of(gql(QUEUE, token=token)["data"]["waitingQueue"])
    assert [row["customer"]["displayName"] for row in queue] == ["Bob", "Ann"]
    # the "Mia is your client manager" notice and two messages
    assert queue[1]["unreadCount"] == 3 and queue[1]["tier"] == "ORDINARY"
    clock.advance(dt.timedelta(minutes=1))
    say(cyd, conversation_of(cyd), "one more thing", "c2")  # Cyd waits again, since minute 5
    queue = nodes_of(gql(QUEUE, token=token)["data"]["waitingQueue"])
    assert [row["customer"]["displayName"] for row in queue] == ["Bob", "Ann", "Cyd"]

    customers = nodes_of(gql(CUSTOMERS, token=token)["data"]["myCustomers"])
    assert [c["customer"]["displayName"] for c in customers] == ["Cyd", "Ann", "Bob", "Dan"]
    assert customers[-1]["lastContactAt"] is None and customers[-1]["unreadCount"] == 1  # only the notice


def test_queue_and_customer_list_take_a_fixed_number_of_queries(gql):
    mia = new_manager("Mia")
    token = token_for(mia)

    def measure(n_new):
        for _ in range(n_new):
            c = new_user()
            assign(c, mia)
            say(c, conversation_of(c), "hello", f"k{c.pk}")
        with CaptureQueriesContext(connection) as ctx:
            assert "errors" not in gql(QUEUE, token=token)
            assert "errors" not in gql(CUSTOMERS, token=token)
        return len(ctx.captured_queries)

    small = measure(2)
    assert measure(10) == small


NOTES = "query($c: ID!) { customerNotes(customerId: $c) { body author { displayName } } }"
ADD_NOTE = "mutation($c: ID!, $b: String!) { addCustomerNote(customerId: $c, body: $b) { note { body } errors { code } } }"


def test_notes_are_for_the_customers_own_manager_only(gql):
    mia, max_ = new_manager("Mia"), new_manager("Max")
    ann = new_user("Ann")
    assign(ann, mia)
    c = user_gid(ann)
    assert gql(ADD_NOTE, {"c": c, "b": "prefers mornings; low risk"}, token=token_for(mia))["data"][
        "addCustomerNote"]["errors"] == []
    assert gql(NOTES, {"c": c}, token=token_for(mia))["data"]["customerNotes"] == [
        {"body": "prefers mornings; low risk", "author": {"displayName": "Mia"}}]
    # another manager and the customer herself: not found, nothing written
    denied = gql(ADD_NOTE, {"c": c, "b": "x"}, token=token_for(max_))["data"]["addCustomerNote"]
    assert denied["errors"] == [{"code": "NOT_FOUND"}]
    for token in (token_for(max_), token_for(ann)):
        result = gql(NOTES, {"c": c}, token=token)
        assert result["data"] is None and "Not found" in result["errors"][0]["message"]


def test_notes_never_reach_the_customer_by_node_or_chat(gql):
    mia = new_manager("Mia")
    ann = new_user("Ann")
    assign(ann, mia)
    note_id = gql(ADD_NOTE, {"c": user_gid(ann), "b": "secret"}, token=token_for(mia))
    from backend.advisors.models import CustomerNote

    gid = encode_id("CustomerNote", CustomerNote.objects.get().pk)
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert gql(node, {"id": gid}, token=token_for(ann))["data"]["node"] is None
    assert gql(node, {"id": gid}, token=token_for(mia))["data"]["node"] == {"id": gid}
    history = "query($c: ID!) { messages(conversationId: $c) { edges { node { body } } } }"
    bodies = gql(history, {"c": encode_id("Conversation", conversation_of(ann))}, token=token_for(ann))
    assert "secret" not in str(bodies) and note_id


QUICK = "mutation { createQuickReply(title: \"hours\", text: \"We open at 9.\") { quickReply { id } errors { code } } }"
SEND_QUICK = """mutation($c: ID!, $q: ID!) { sendQuickReply(customerId: $c, quickReplyId: $q, clientMsgId: "q-1") {
  message { body sender { displayName } } errors { code } } }"""
SEND_CARD = """mutation($c: ID!, $p: ID!) { sendProductCard(customerId: $c, productId: $p, clientMsgId: "p-1") {
  message { card } errors { code } } }"""
SHARE = """mutation($p: ID!, $c: ID!, $k: String!) { shareProduct(productId: $p, conversationId: $c, clientMsgId: $k) {
  message { card } errors { code } } }"""


def test_quick_replies_and_product_cards_reach_only_my_customers(gql, product):
    mia, max_ = new_manager("Mia"), new_manager("Max")
    ann, bob = new_user("Ann"), new_user("Bob")
    assign(ann, mia)
    assign(bob, max_)
    quick = gql(QUICK, token=token_for(mia))["data"]["createQuickReply"]["quickReply"]["id"]
    sent = gql(SEND_QUICK, {"c": user_gid(ann), "q": quick}, token=token_for(mia))["data"]["sendQuickReply"]
    assert sent == {"message": {"body": "We open at 9.", "sender": {"displayName": "Mia"}}, "errors": []}
    assert gql(SEND_QUICK, {"c": user_gid(bob), "q": quick}, token=token_for(mia))["data"]["sendQuickReply"][
        "errors"] == [{"code": "NOT_FOUND"}]
    assert gql(SEND_QUICK, {"c": user_gid(ann), "q": quick}, token=token_for(max_))["data"]["sendQuickReply"][
        "errors"] == [{"code": "NOT_FOUND"}]

    pid = encode_id("Product", product.pk)
    card = gql(SEND_CARD, {"c": user_gid(ann), "p": pid}, token=token_for(mia))["data"]["sendProductCard"]
    assert card["errors"] == []
    assert card["message"]["card"].items() >= {"kind": "product", "title": "稳健理财 90天", "risk_level": "R2",
                                              "expected_yield_bps": 310, "min_amount": 100000,
                                              "detail_url": "https://bank.example/p/90"}.items()
    assert gql(SEND_CARD, {"c": user_gid(bob), "p": pid}, token=token_for(mia))["data"]["sendProductCard"][
        "errors"] == [{"code": "NOT_FOUND"}]

    # Ann passes the card on to a friend; the share is recorded for referrals
    friend = new_user("Fay")
    direct = chat_services.open_direct_conversation(user=ann, other_user_id=friend.pk)
    shared = gql(SHARE, {"p": pid, "c": encode_id("Conversation", direct.pk), "k": "s-1"}, token=token_for(ann))["data"][
        "shareProduct"]
    assert shared["errors"] == [] and shared["message"]["card"]["shared_by"] == user_gid(ann)
    assert ProductShare.objects.get().sharer == ann
    # ...but not into a conversation she is not in
    other = chat_services.open_direct_conversation(user=bob, other_user_id=friend.pk)
    assert gql(SHARE, {"p": pid, "c": encode_id("Conversation", other.pk), "k": "s-2"}, token=token_for(ann))["data"][
        "shareProduct"]["errors"][0]["code"] == "NOT_FOUND"


def test_another_managers_customers_are_invisible_over_graphql(gql):
    mia, max_ = new_manager("Mia"), new_manager("Max")
    ann = new_user("Ann")
    assign(ann, mia)
    say(ann, conversation_of(ann), "private question", "a1")
    token = token_for(max_)
    assert nodes_of(gql(QUEUE, token=token)["data"]["waitingQueue"]) == []
    assert nodes_of(gql(CUSTOMERS, token=token)["data"]["myCustomers"]) == []
    conv = encode_id("Conversation", conversation_of(ann))
    assert gql("query($c: ID!) { conversation(id: $c) { id } }", {"c": conv}, token=token)["data"][
        "conversation"] is None
    history = gql("query($c: ID!) { messages(conversationId: $c) { edges { node { body } } } }", {"c": conv},
                  token=token)
    assert "private question" not in str(history)
    # after reassignment to Max, Mia loses access and Max gains it
    assign(ann, max_)
    assert [r["customer"]["displayName"] for r in nodes_of(gql(QUEUE, token=token)["data"]["waitingQueue"])] == ["Ann"]
    assert nodes_of(gql(QUEUE, token=token_for(mia))["data"]["waitingQueue"]) == []
    assert nodes_of(gql(CUSTOMERS, token=token_for(mia))["data"]["myCustomers"]) == []


def test_customer_list_pages(gql):
    mia = new_manager("Mia")
    for name in ("Ann", "Bob", "Cyd"):
        assign(new_user(name), mia)
    page = """query($after: String) { myCustomers(first: 2, after: $after) {
      edges { node { customer { displayName } } } pageInfo { hasNextPage endCursor } } }"""
    token = token_for(mia)
    first = gql(page, token=token)["data"]["myCustomers"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = gql(page, {"after": first["pageInfo"]["endCursor"]}, token=token)["data"]["myCustomers"]
    assert second["pageInfo"]["hasNextPage"] is False
    names = [n["customer"]["displayName"] for n in nodes_of(first) + nodes_of(second)]
    assert sorted(names) == ["Ann", "Bob", "Cyd"]
    too_many = gql("query { myCustomers(first: 101) { edges { cursor } } }", token=token)
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"


TAGS = "mutation($c: ID!, $t: [String!]!) { setCustomerTags(customerId: $c, tags: $t) { tags errors { code } } }"


def test_tags_are_set_by_the_customers_manager_and_shown_to_managers(gql):
    mia, max_ = new_manager("Mia"), new_manager("Max")
    ann = new_user("Ann")
    assign(ann, mia)
    result = gql(TAGS, {"c": user_gid(ann), "t": ["retiree", "fund buyer", "retiree"]}, token=token_for(mia))
    assert result["data"]["setCustomerTags"] == {"tags": ["retiree", "fund buyer"], "errors": []}
    assert nodes_of(gql(CUSTOMERS, token=token_for(mia))["data"]["myCustomers"])[0]["tags"] == ["retiree", "fund buyer"]
    assert gql(TAGS, {"c": user_gid(ann), "t": ["x"]}, token=token_for(max_))["data"]["setCustomerTags"][
        "errors"] == [{"code": "NOT_FOUND"}]
    assert gql(TAGS, {"c": user_gid(ann), "t": ["bad\nline"]}, token=token_for(mia))["data"]["setCustomerTags"][
        "errors"] == [{"code": "INVALID_TEXT"}]
    assert CustomerRecord.objects.get(customer=ann).tags == ["retiree", "fund buyer"]
