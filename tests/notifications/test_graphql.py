"""The in-app inbox and preferences over GraphQL: scoped to the caller, paged, no N+1, stable error codes."""

from __future__ import annotations

import pytest

from backend.accounts.models import User
from backend.core.ids import encode_id
from backend.notifications import services
from backend.notifications.models import Notification

pytestmark = pytest.mark.django_db

INBOX = """
query Inbox($first: Int, $after: String, $unreadOnly: Boolean) {
  unreadNotificationCount
  notifications(first: $first, after: $after, unreadOnly: $unreadOnly) {
    edges { cursor node { id kind event title body payload createdAt readAt isRead } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}
"""
MARK_READ = """
mutation Read($ids: [ID!], $all: Boolean) {
  markNotificationsRead(ids: $ids, all: $all) { marked unreadCount errors { field code message } }
}
"""
PREFS = """
query { notificationPreferences { messages money loans circles marketing showPreviews timezone
                                  quietHours { start end } } }
"""
UPDATE_PREFS = """
mutation Prefs($money: Boolean, $marketing: Boolean, $showPreviews: Boolean, $quietHours: QuietHoursInput,
               $timezone: String) {
  updateNotificationPreferences(money: $money, marketing: $marketing, showPreviews: $showPreviews,
                                quietHours: $quietHours, timezone: $timezone) {
    preferences { money marketing showPreviews timezone quietHours { start end } }
    errors { field code message }
  }
}
"""


@pytest.fixture
def me(gql, sign_in):
    payload = sign_in("+8613900000011")
    gql.token = payload["tokens"]["accessToken"]
    return User.objects.get_by_phone("+8613900000011")


def add(user, n=1, **fields):
    return [services.notify(recipient_id=user.pk, kind=fields.get("kind", "money"), event="wallet.x",
                            title=f"t{i}", body=f"b{i}", payload={"transfer_id": f"T{i}"}) for i in range(n)]


def test_inbox_lists_my_notifications_newest_first_with_relay_ids(gql, me):
    stranger = User.objects.create_user("+8613900000012", display_name="Eve")
    mine = add(me, 3)
    add(stranger, 2)
    data = gql(INBOX)["data"]
    assert data["unreadNotificationCount"] == 3
    nodes = [edge["node"] for edge in data["notifications"]["edges"]]
    assert [n["id"] for n in nodes] == [encode_id("Notification", row.pk) for row in reversed(mine)]
    assert nodes[0] == {**nodes[0], "kind": "MONEY", "title": "t2", "body": "b2", "payload": '{"transfer_id": "T2"}',
                        "isRead": False, "readAt": None}


def test_pages_are_keyset_capped_at_100_and_stable_when_new_ones_arrive(gql, me):
    rows = add(me, 105)
    too_many = gql(INBOX, {"first": 500})
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"
    first = gql(INBOX, {"first": 100})["data"]["notifications"]
    assert len(first["edges"]) == 100 and first["pageInfo"]["hasNextPage"] is True
    add(me, 2)  # arrivals at the top do not shift the next page
    second = gql(INBOX, {"first": 100, "after": first["pageInfo"]["endCursor"]})["data"]["notifications"]
    assert [e["node"]["id"] for e in second["edges"]] == [encode_id("Notification", r.pk) for r in reversed(rows[:5])]
    assert second["pageInfo"]["hasNextPage"] is False and second["pageInfo"]["hasPreviousPage"] is True


def test_bad_page_arguments_get_stable_codes(gql, me):
    zero = gql(INBOX, {"first": 0})
    assert zero["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"
    bad = gql(INBOX, {"after": "not-a-cursor"})
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_CURSOR"


def test_inbox_has_no_n_plus_one(gql, me, django_assert_max_num_queries):
    add(me, 50)
    with django_assert_max_num_queries(4):  # token's device+user, the count, one page
        data = gql(INBOX, {"first": 50})["data"]
    assert len(data["notifications"]["edges"]) == 50


def test_unauthenticated_inbox_is_refused(gql):
    result = gql(INBOX)
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_mark_read_by_id_and_all(gql, me):
    a, b, c = add(me, 3)
    result = gql(MARK_READ, {"ids": [encode_id("Notification", a.pk)]})["data"]["markNotificationsRead"]
    assert result == {"marked": 1, "unreadCount": 2, "errors": []}
    unread = gql(INBOX, {"unreadOnly": True})["data"]["notifications"]["edges"]
    assert {e["node"]["id"] for e in unread} == {encode_id("Notification", b.pk), encode_id("Notification", c.pk)}
    result = gql(MARK_READ, {"all": True})["data"]["markNotificationsRead"]
    assert result == {"marked": 2, "unreadCount": 0, "errors": []}


def test_mark_read_of_someone_elses_notification_is_not_found_and_changes_nothing(gql, me):
    stranger = User.objects.create_user("+8613900000013", display_name="Eve")
    [mine] = add(me)
    [theirs] = add(stranger)
    ids = [encode_id("Notification", mine.pk), encode_id("Notification", theirs.pk)]
    result = gql(MARK_READ, {"ids": ids})["data"]["markNotificationsRead"]
    assert result["errors"] == [{"field": "ids", "code": "NOT_FOUND", "message": "Not found."}]
    assert not Notification.objects.filter(read_at__isnull=False).exists()
    for bad in (["garbage"], [encode_id("Device", mine.pk)]):
        assert gql(MARK_READ, {"ids": bad})["data"]["markNotificationsRead"]["errors"][0]["code"] == "NOT_FOUND"
    too_many = gql(MARK_READ, {"ids": [encode_id("Notification", mine.pk)] * 101})["data"]["markNotificationsRead"]
    assert too_many["errors"][0]["code"] == "TOO_MANY_IDS"
    neither = gql(MARK_READ, {})["data"]["markNotificationsRead"]
    assert neither["errors"][0]["code"] == "INVALID"
    assert not Notification.objects.filter(read_at__isnull=False).exists()


def test_preferences_default_to_no_marketing_and_no_previews(gql, me):
    prefs = gql(PREFS)["data"]["notificationPreferences"]
    assert prefs == {"messages": True, "money": True, "loans": True, "circles": True, "marketing": False,
                     "showPreviews": False, "timezone": "Asia/Shanghai", "quietHours": None}


def test_update_preferences_and_clear_quiet_hours(gql, me):
    result = gql(UPDATE_PREFS, {"money": False, "showPreviews": True, "quietHours": {"start": "22:30", "end": "07:00"},
                                "timezone": "Europe/London"})["data"]["updateNotificationPreferences"]
    assert result["errors"] == []
    assert result["preferences"] == {"money": False, "marketing": False, "showPreviews": True,
                                     "timezone": "Europe/London", "quietHours": {"start": "22:30", "end": "07:00"}}
    result = gql(UPDATE_PREFS, {"quietHours": None})["data"]["updateNotificationPreferences"]
    assert result["preferences"]["quietHours"] is None
    assert result["preferences"]["money"] is False  # left out: unchanged


@pytest.mark.parametrize(
    "variables, field, code",
    [({"quietHours": {"start": "25:00", "end": "07:00"}}, "quietHours.start", "INVALID_QUIET_HOURS"),
     ({"quietHours": {"start": "22:00", "end": "7am"}}, "quietHours.end", "INVALID_QUIET_HOURS"),
     ({"quietHours": {"start": "22:00", "end": "22:00"}}, "quietHours", "INVALID_QUIET_HOURS"),
     ({"timezone": "Mars/Olympus_Mons"}, "timezone", "INVALID_TIMEZONE"),
     ({"timezone": "../../etc/passwd"}, "timezone", "INVALID_TIMEZONE")],
)
def test_bad_preferences_are_refused_and_change_nothing(gql, me, variables, field, code):
    result = gql(UPDATE_PREFS, {"marketing": True, **variables})["data"]["updateNotificationPreferences"]
    assert [(e["field"], e["code"]) for e in result["errors"]] == [(field, code)]
    assert gql(PREFS)["data"]["notificationPreferences"]["marketing"] is False
