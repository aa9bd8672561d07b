"""Cards whose owner app changes their state: versioned updates, `card.updated` live and on resume, history."""

import pytest

from backend.chat import services
from backend.core.errors import DomainError

from .conftest import gid, new_user, token_for
from .test_socket_chat import call, make, next_frame, open_socket

CARD = {"kind": "red_packet", "owner": "payments", "red_packet_id": "RP1", "title": "恭喜发财",
        "state": {"status": "open", "grabbed": 0}}


def codes(fn, **kwargs) -> str:
    with pytest.raises(DomainError) as err:
        fn(**kwargs)
    return err.value.code


@pytest.mark.django_db
def test_owner_updates_state_with_versions_and_history_shows_the_latest(client):
    ada, bob, eve = new_user("Ada"), new_user("Bob"), new_user("Eve")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    posted = services.post_card(conversation_id=conversation.pk, sender=ada, client_msg_id="rp-1", card=CARD).message
    updated = services.update_card(message_id=posted.pk, owner="payments", state={"status": "open", "grabbed": 1},
                                   expected_version=0)
    assert updated.card_version == 1 and updated.change_no == 1
    # A stale writer, another app, a text message, a bad state: refused, nothing changes.
    assert codes(services.update_card, message_id=posted.pk, owner="payments", state={}, expected_version=0) \
        == "CARD_VERSION_CONFLICT"
    assert codes(services.update_card, message_id=posted.pk, owner="loans", state={}, expected_version=1) \
        == "NOT_FOUND"
    text = services.send_message(conversation_id=conversation.pk, sender=bob, client_msg_id="t1", text="hi").message
    assert codes(services.update_card, message_id=text.pk, owner="payments", state={}, expected_version=0) \
        == "NOT_FOUND"
    assert codes(services.update_card, message_id=posted.pk, owner="payments", state="x", expected_version=1) \
        == "INVALID_CARD"
    assert codes(services.update_card, message_id=posted.pk, owner="payments",
                 state={"big": "x" * 5000}, expected_version=1) == "INVALID_CARD"
    query = """query($id: ID!) { messages(conversationId: $id, last: 5) { edges { node { seq card } } } }"""
    for user, visible in ((bob, True), (eve, False)):
        body = client.post("/graphql/", {"query": query, "variables": {"id": gid("Conversation", conversation.pk)}},
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_for(user)}").json()
        if not visible:
            assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
            continue
        cards = [e["node"]["card"] for e in body["data"]["messages"]["edges"] if e["node"]["card"]]
        assert cards == [{**CARD, "state": {"status": "open", "grabbed": 1}, "version": 1}]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_card_updates_arrive_live_and_on_resume():
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    wb = await open_socket(tb)
    result = await call(services.post_card, conversation_id=conversation.pk, sender=ada, client_msg_id="rp-2",
                        card=CARD)
    frame = await next_frame(wb)
    assert frame["type"] == "message" and frame["message"]["card"]["version"] == 0
    await call(services.update_card, message_id=result.message.pk, owner="payments",
               state={"status": "open", "grabbed": 1}, expected_version=0)
    live = await next_frame(wb)
    assert live["type"] == "card.updated" and live["change"] == 1
    assert live["message"]["card"]["state"] == {"status": "open", "grabbed": 1} and live["message"]["card"]["version"] == 1
    await wb.disconnect()
    await call(services.update_card, message_id=result.message.pk, owner="payments",
               state={"status": "done", "grabbed": 1}, expected_version=1)
    wb2 = await open_socket(tb)
    await wb2.send_json_to({"type": "resume", "conversations": {c: {"seq": 1, "change": 1}}})
    missed = await next_frame(wb2)
    assert missed["type"] == "card.updated" and missed["change"] == 2
    assert missed["message"]["card"]["state"]["status"] == "done" and missed["message"]["card"]["version"] == 2
    assert (await next_frame(wb2))["conversations"][c] == {"last_seq": 1, "last_change": 2}
    await wb2.disconnect()


@pytest.mark.django_db
def test_server_card_has_no_sender_is_idempotent_on_its_key_and_only_its_owner_updates_it(client):
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    card = {"kind": "loan_request", "owner": "loans", "loan_id": "L1", "state": {"status": "funding"}}
    posted, created = services.post_server_card(conversation_id=conversation.pk, key="loan:1", card=card)
    again, created_again = services.post_server_card(conversation_id=conversation.pk, key="loan:1", card=card)
    assert created and not created_again and again.pk == posted.pk and posted.sender_id is None
    assert conversation.messages.filter(kind="card").count() == 1
    assert codes(services.post_server_card, conversation_id=conversation.pk, key="x",
                 card={"kind": "loan_request"}) == "INVALID_CARD"  # no owner app: nobody could ever update it
    assert codes(services.update_card, message_id=posted.pk, owner="payments", state={}, expected_version=0) \
        == "NOT_FOUND"
    services.update_card(message_id=posted.pk, owner="loans", state={"status": "active"}, expected_version=0)
    query = """query($id: ID!) { messages(conversationId: $id, last: 5) { edges { node { sender { id } card } } } }"""
    body = client.post("/graphql/", {"query": query, "variables": {"id": gid("Conversation", conversation.pk)}},
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token_for(bob)}").json()
    assert [e["node"] for e in body["data"]["messages"]["edges"]] == [
        {"sender": None, "card": {**card, "state": {"status": "active"}, "version": 1}}]
