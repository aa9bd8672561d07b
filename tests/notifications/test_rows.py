"""What `notify_many` writes: the rows a reader finds (text encrypted at rest, defaults as the model says, the
clock's time), in one INSERT, handed back as saved rows with their ids in the order given, and announced to
`notification_recorded` listeners (advisors' Security account) with what they read."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from backend.core import clock
from backend.notifications import services
from backend.notifications.models import Notification
from backend.notifications.signals import notification_recorded

from .conftest import make_user

pytestmark = pytest.mark.django_db

State = Notification.PushState


def alert(user, n: int, **extra) -> dict:
    return dict(recipient_id=user.pk, kind="money", event="wallet.balance_changed", title="资金变动提醒",
                body=f"收入 ¥{n}.00。可用余额 ¥{n}.00。", payload={"entry_id": f"JournalEntry:{n}"}, **extra)


@pytest.fixture
def recorded():
    heard: list[Notification] = []

    def listener(sender, *, notification, **kwargs):
        heard.append(notification)

    notification_recorded.connect(listener, dispatch_uid="test_rows")
    yield heard
    notification_recorded.disconnect(dispatch_uid="test_rows")


def test_rows_come_back_saved_in_order_and_read_back_the_same(recorded):
    ada, bob = make_user(name="Ada"), make_user(name="Bob")
    moment = dt.datetime(2026, 11, 24, 3, 4, 5, 678_000, tzinfo=dt.UTC)
    with clock.frozen_at(moment), CaptureQueriesContext(connection) as ctx:
        rows = services.notify_many([
            alert(ada, 1),
            alert(bob, 2),
            dict(recipient_id=bob.pk, kind="message", event="chat.message" + "x" * 80, title="T" * 200, body="hi",
                 conversation_id=42),
        ])
    inserts = [q["sql"] for q in ctx.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and len(ctx.captured_queries) == 1  # one statement for all three rows
    assert [r.recipient_id for r in rows] == [ada.pk, bob.pk, bob.pk]
    assert all(r.pk for r in rows) and len({r.pk for r in rows}) == 3
    assert all(not r._state.adding for r in rows)
    stored = {n.pk: n for n in Notification.objects.filter(pk__in=[r.pk for r in rows])}
    for row in rows:
        again = stored[row.pk]
        for field in Notification._meta.concrete_fields:
            assert getattr(again, field.attname) == getattr(row, field.attname), field.name
    first, _, chat = rows
    assert (first.body, first.payload, first.created_at) == ("收入 ¥1.00。可用余额 ¥1.00。",
                                                           {"entry_id": "JournalEntry:1"}, moment)
    assert (first.push_state, first.push_attempts, first.read_at, first.collapse_key) == (State.PENDING, 0, None, "")
    # as notify always did: text cut to the columns, a conversation's rows collapse by default
    assert (len(chat.event), len(chat.title), chat.collapse_key) == (60, 120, "conversation:42")
    assert [n.pk for n in recorded] == [r.pk for r in rows]
    assert (recorded[0].event, recorded[0].title, recorded[0].body) == (
        "wallet.balance_changed", "资金变动提醒", "收入 ¥1.00。可用余额 ¥1.00。")


def test_the_body_is_encrypted_at_rest():
    ada = make_user()
    [row] = services.notify_many([alert(ada, 7)])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT body FROM {Notification._meta.db_table} WHERE id = %s", [row.pk])
        stored = cursor.fetchone()[0]
    assert "¥7.00" not in stored and stored != row.body
    assert Notification.objects.get(pk=row.pk).body == "收入 ¥7.00。可用余额 ¥7.00。"


def test_a_fan_out_past_the_databases_parameter_limit(recorded):
    users = [make_user(name=f"M{n}") for n in range(3)]
    items = [alert(users[n % 3], n) for n in range(260)]  # SQLite binds at most 999 values per statement
    rows = services.notify_many(items)
    assert [r.body for r in rows] == [item["body"] for item in items]
    assert Notification.objects.count() == 260
    assert dict(Notification.objects.values_list("pk", "body")) == {r.pk: r.body for r in rows}
    assert [n.pk for n in recorded] == [r.pk for r in rows]


def test_an_unknown_kind_writes_nothing_and_nothing_is_a_no_op(recorded):
    ada = make_user()
    with pytest.raises(ValueError):
        services.notify_many([alert(ada, 1), dict(alert(ada, 2), kind="gossip")])
    assert services.notify_many([]) == []
    assert not Notification.objects.exists() and recorded == []


def test_without_returning_ids_the_orm_writes_them(monkeypatch, recorded):
    """A database that cannot return the ids of a multi-row INSERT goes through bulk_create, same rows."""
    ada, bob = make_user(), make_user()
    monkeypatch.setattr(services._INSERT, "supported", lambda connection: False)
    rows = services.notify_many([alert(ada, 1), alert(bob, 2)])
    assert [(r.recipient_id, r.body) for r in rows] == [(ada.pk, "收入 ¥1.00。可用余额 ¥1.00。"),
                                                        (bob.pk, "收入 ¥2.00。可用余额 ¥2.00。")]
    assert all(r.pk for r in rows) and [n.pk for n in recorded] == [r.pk for r in rows]


def test_a_row_of_a_rolled_back_transaction_is_gone():
    ada = make_user()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.notify_many([alert(ada, 1)])
        raise RuntimeError("the transfer failed")
    assert not Notification.objects.exists()
