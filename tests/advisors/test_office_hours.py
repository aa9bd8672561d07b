"""Outside office hours a customer gets one automatic reply per closed window; inside them none. The reply is
a system message, so the conversation stays in the manager's waiting queue."""

import datetime as dt
import zoneinfo

import pytest

from backend.advisors import selectors
from backend.advisors.models import AutoReply, CustomerRecord
from backend.chat import selectors as chat_selectors
from backend.chat import services as chat_services
from backend.core import clock

from .conftest import assign, new_manager, new_user

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """November 2026 in Shanghai: the 23rd is a Monday."""
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


def auto_replies(customer):
    record = CustomerRecord.objects.get(customer=customer)
    seat = chat_selectors.seat_of(customer.pk, record.conversation_id)
    return [m for m in chat_selectors.history(seat, limit=100)[0]
            if m.kind == "system" and '"auto_reply"' in m.data]


@pytest.fixture
def pair():
    mia = new_manager("Mia", always_open=False, away_message="")  # Mon–Fri 09:00–17:30 Shanghai (defaults)
    ann = new_user("Ann")
    assign(ann, mia)
    return ann, mia, CustomerRecord.objects.get(customer=ann).conversation_id


def test_one_auto_reply_per_closed_window(pair):
    ann, mia, conversation_id = pair
    with clock.frozen_at(at(23, 20)):  # Monday evening
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a1", text="在吗")
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a2", text="??")
    (reply,) = auto_replies(ann)
    assert "out of office" in reply.body and "Tue 09:00" in reply.body
    with clock.frozen_at(at(24, 7, 30)):  # still the same night: no second reply
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a3", text="hello")
    assert len(auto_replies(ann)) == 1
    with clock.frozen_at(at(24, 10)):  # office open: no reply
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a4", text="hi")
    assert len(auto_replies(ann)) == 1
    with clock.frozen_at(at(28, 11)):  # Saturday: a new window (opens Monday 30th)
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a5", text="weekend")
    assert len(auto_replies(ann)) == 2
    assert AutoReply.objects.filter(window_opens_at=at(30, 9)).exists()
    # the manager's own late messages never trigger it
    with clock.frozen_at(at(28, 12)):
        chat_services.send_message(conversation_id=conversation_id, sender=mia, client_msg_id="m1", text="noted")
    assert len(auto_replies(ann)) == 2


def test_auto_reply_does_not_take_the_conversation_out_of_the_queue(pair):
    ann, mia, conversation_id = pair
    with clock.frozen_at(at(23, 22)):
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a1", text="在吗")
        (waiting,) = selectors.waiting_queue(mia)
    assert waiting.customer == ann and auto_replies(ann)


def test_away_message_and_hours_set_by_the_manager(pair, gql):
    from tests.chat.conftest import token_for

    ann, mia, conversation_id = pair
    result = gql("""mutation { setOfficeHours(days: [5, 6], opens: "10:00:00", closes: "12:00:00",
                    timezone: "Asia/Shanghai", awayMessage: "周末上午在线") { ok errors { code field } } }""",
                 token=token_for(mia))["data"]["setOfficeHours"]
    assert result == {"ok": True, "errors": []}
    with clock.frozen_at(at(28, 11)):  # Saturday 11:00 is now open
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a1", text="hi")
    assert auto_replies(ann) == []
    with clock.frozen_at(at(30, 11)):  # Monday is now closed
        chat_services.send_message(conversation_id=conversation_id, sender=ann, client_msg_id="a2", text="hi")
    assert [m.body for m in auto_replies(ann)] == ["周末上午在线"]
    bad = gql("""mutation { setOfficeHours(days: [9], opens: "10:00:00", closes: "09:00:00", timezone: "Mars/Base")
                 { ok errors { code field } } }""", token=token_for(mia))["data"]["setOfficeHours"]
    assert bad["errors"] == [{"code": "INVALID_OFFICE_HOURS", "field": "days"}]
