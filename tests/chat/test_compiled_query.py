"""core.compiled: a queryset compiled once and re-run with new values returns what the queryset itself
returns for those values, and a sentinel that does not reach the SQL is refused instead of binding wrongly."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from backend.chat import services
from backend.chat.models import Membership
from backend.core import clock
from backend.core.compiled import CompiledQuery
from backend.notifications import services as notification_services
from backend.notifications.selectors import conversation_muted_flag
from tests.conftest import befriend

T0 = dt.datetime(1970, 1, 2, 3, 4, 5, 678_901, tzinfo=dt.UTC)


def members(conversation_id: int, at: dt.datetime):
    return (Membership.objects.filter(conversation_id=conversation_id, left_at__isnull=True)
            .annotate(is_muted=conversation_muted_flag(at=at)).values_list("user_id", "is_muted").order_by("user_id"))


@pytest.mark.django_db
def test_compiled_rows_match_the_querysets_rows_for_new_values(users):
    ada, bob, cyd, _ = users
    befriend(ada, bob), befriend(ada, cyd)
    one = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    two = services.create_group(owner=ada, title="g", member_ids=[bob.pk, cyd.pk])
    notification_services.set_conversation_muted(user_id=bob.pk, conversation_id=two.pk, muted=True,
                                                 until=clock.now() + dt.timedelta(hours=1))
    compiled = CompiledQuery(members, conversation_id=-1, at=T0)
    for conversation in (one, two):
        for at in (clock.now(), clock.now() + dt.timedelta(hours=2)):  # during the mute, after it ended
            expected = [(uid, bool(muted)) for uid, muted in members(conversation.pk, at)]
            got = [(uid, bool(muted)) for uid, muted in compiled.rows(connection, conversation_id=conversation.pk, at=at)]
            assert got == expected
    assert (bob.pk, True) in [(u, bool(m)) for u, m in compiled.rows(connection, conversation_id=two.pk, at=clock.now())]


@pytest.mark.django_db
def test_a_sentinel_that_does_not_reach_the_sql_is_refused():
    compiled = CompiledQuery(lambda conversation_id, at: Membership.objects.filter(conversation_id=conversation_id),
                             conversation_id=-1, at=T0)
    with pytest.raises(ValueError, match="did not reach the SQL"):
        compiled.sql(connection, conversation_id=5, at=clock.now())
