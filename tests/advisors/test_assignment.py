"""Assignment (by operations, by branch, round-robin with capacity), reassignment and "My client manager"."""

import pytest

from backend.advisors import services
from backend.advisors.models import Assignment, CustomerRecord
from backend.chat import selectors as chat_selectors
from backend.chat import services as chat_services
from backend.chat.models import Membership
from backend.notifications.models import Notification

from .conftest import assign, new_manager, new_user

pytestmark = pytest.mark.django_db


def test_admin_assignment_opens_the_advisor_conversation_and_tells_the_customer():
    ann = new_user("Ann")
    mia = new_manager("Mia")
    assignment = assign(ann, mia)
    record = CustomerRecord.objects.get(customer=ann)
    assert assignment.manager == mia and record.conversation.kind == "advisor"
    assert {s.user_id for s in Membership.objects.filter(conversation=record.conversation, left_at__isnull=True)} \
        == {ann.pk, mia.pk}
    seat = chat_selectors.seat_of(ann.pk, record.conversation_id)
    (notice,) = chat_selectors.history(seat)[0]
    assert notice.kind == "system" and "Mia is your client manager" in notice.body
    assert Notification.objects.filter(recipient=ann, event="advisors.manager_assigned").exists()
    assert assign(ann, mia).pk == assignment.pk  # assigning the same manager again changes nothing


def test_round_robin_spreads_customers_and_respects_capacity():
    mia, max_ = new_manager("Mia", capacity=2), new_manager("Max", capacity=1)
    customers = [new_user(f"c{i}") for i in range(3)]
    chosen = [services.assign_customer(customer_id=c.pk, method="round_robin").manager_id for c in customers]
    assert sorted(chosen) == sorted([mia.pk, mia.pk, max_.pk])
    with pytest.raises(services.NoManagerAvailable):
        services.assign_customer(customer_id=new_user("late").pk, method="round_robin")
    with pytest.raises(services.ManagerFull):
        services.assign_customer(customer_id=new_user("forced").pk, method="admin", manager_id=max_.pk)


def test_branch_assignment_picks_a_manager_of_the_customers_branch():
    new_manager("Mia", branch="Haidian")
    leo = new_manager("Leo", branch="Pudong")
    ann = new_user("Ann")
    CustomerRecord.objects.create(customer=ann, branch="Pudong")
    assert services.assign_customer(customer_id=ann.pk, method="branch").manager == leo
    bob = new_user("Bob")
    CustomerRecord.objects.create(customer=bob, branch="Nowhere")
    with pytest.raises(services.NoManagerAvailable):
        services.assign_customer(customer_id=bob.pk, method="branch")


def test_reassignment_keeps_history_moves_the_seat_and_tells_the_customer():
    ann = new_user("Ann")
    mia, max_ = new_manager("Mia"), new_manager("Max")
    assign(ann, mia)
    conversation_id = CustomerRecord.objects.get(customer=ann).conversation_id
    chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="q1", text="基金怎么买?")
    chat_services.send_message(conversation_id=conversation_id, sender=mia, client_msg_id="a1", text="我来帮您")

    assign(ann, max_)

    assert CustomerRecord.objects.get(customer=ann).conversation_id == conversation_id  # same conversation
    assert Assignment.objects.filter(customer=ann).count() == 2
    assert Assignment.objects.get(customer=ann, ended_at__isnull=True).manager == max_
    assert chat_selectors.seat_of(mia.pk, conversation_id) is None  # the old manager left
    new_seat = chat_selectors.seat_of(max_.pk, conversation_id)
    bodies = [m.body for m in chat_selectors.history(new_seat)[0]]
    assert "基金怎么买?" in bodies and "我来帮您" in bodies  # the new manager reads the whole history
    customer_view = [m.body for m in chat_selectors.history(chat_selectors.seat_of(ann.pk, conversation_id))[0]]
    assert "基金怎么买?" in customer_view and any("now Max" in b for b in customer_view)
    assert Notification.objects.filter(recipient=ann, event="advisors.manager_changed").exists()
    assert chat_selectors.title_of(chat_selectors.seat_of(ann.pk, conversation_id)) == "Max"


def test_customer_may_ask_for_a_different_manager():
    ann = new_user("Ann")
    mia, max_ = new_manager("Mia"), new_manager("Max")
    assign(ann, mia)
    assert services.request_different_manager(customer=ann, reason="想换人").manager == max_
    with pytest.raises(services.NoManagerAvailable):  # Max is current, Mia takes nobody new: no one to switch to
        max_.manager_profile.delete()
        mia.manager_profile.accepting = False
        mia.manager_profile.save()
        services.request_different_manager(customer=ann)


OPEN = """mutation { openMyClientManager { myClientManager { manager { displayName isVerified }
  conversation { id kind title } } errors { code } } }"""
ME = "query { myClientManager { manager { displayName } conversation { kind } } }"


def test_my_client_manager_assigns_on_first_open_and_opens_the_conversation(gql):
    from tests.chat.conftest import token_for

    new_manager("Mia")
    ann = new_user("Ann")
    token = token_for(ann)
    assert gql(ME, token=token)["data"]["myClientManager"] is None
    payload = gql(OPEN, token=token)["data"]["openMyClientManager"]
    assert payload["errors"] == []
    mine = payload["myClientManager"]
    assert mine["manager"] == {"displayName": "Mia", "isVerified": True}
    assert mine["conversation"]["kind"] == "ADVISOR" and mine["conversation"]["title"] == "Mia"
    assert gql(ME, token=token)["data"]["myClientManager"]["manager"]["displayName"] == "Mia"
