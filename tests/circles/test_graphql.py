"""Circles over GraphQL: scoping (hidden circles, member lists, blacklist marks), a non-friend's chat attempt,
and the moments timeline's constant query count."""

from __future__ import annotations

from backend.accounts.ids import user_gid
from backend.accounts.services import DeviceInfo, _start_session
from backend.circles import services
from backend.core.ids import encode_id

from .conftest import befriend


def token(user) -> str:
    return _start_session(user, DeviceInfo()).access_token


CIRCLE = "query Q($id: ID!) { circle(id: $id) { name myRole conversationId myTrust { score formula } } }"
MEMBERS = """query Q($id: ID!) { circleMembers(circleId: $id) { edges { node { user { displayName } role
  blacklisted verified } } } }"""
MOMENTS = """query Q($after: String) { moments(first: 10, after: $after) { edges { node { id text likeCount likedByMe
  author { displayName } circle { name } comments { text author { displayName } } } }
  pageInfo { hasNextPage endCursor } } }"""


def test_hidden_circles_do_not_exist_for_non_members(gql, people):
    ada, bob, *_ = people
    hidden = services.create_circle(owner=ada, kind="friends", name="Secret", visibility="hidden")
    public = services.create_circle(owner=ada, kind="interest", name="Open")
    gid = encode_id("Circle", hidden.pk)
    assert gql(CIRCLE, {"id": gid}, token=token(ada))["data"]["circle"]["myRole"] == "OWNER"
    assert gql(CIRCLE, {"id": gid}, token=token(bob))["data"]["circle"] is None
    missing = gql(CIRCLE, {"id": encode_id("Circle", 987654321)}, token=token(bob))
    assert missing["data"]["circle"] is None
    seen = gql(CIRCLE, {"id": encode_id("Circle", public.pk)}, token=token(bob))["data"]["circle"]
    assert seen == {"name": "Open", "myRole": None, "conversationId": None, "myTrust": None}
    join = gql('mutation M($id: ID!) { joinCircle(circleId: $id) { circle { name } pending errors { code } } }',
               {"id": gid}, token=token(bob))["data"]["joinCircle"]
    assert join["errors"][0]["code"] == "NOT_FOUND"
    members = gql(MEMBERS, {"id": gid}, token=token(bob))
    assert members["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_member_list_shows_the_blacklist_mark_only_in_circles_told(gql, people):
    ada, bob, *_ = people
    told = services.create_circle(owner=ada, kind="alumni", name="Told")
    untold = services.create_circle(owner=ada, kind="alumni", name="Untold")
    for circle in (told, untold):
        services.join_circle(user=bob, circle_id=circle.pk)
    services.blacklist_for_default(user=bob, loan_ref="L-1", circles=[told])

    def marks(circle):
        edges = gql(MEMBERS, {"id": encode_id("Circle", circle.pk)}, token=token(ada))["data"]["circleMembers"]["edges"]
        return {e["node"]["user"]["displayName"]: e["node"]["blacklisted"] for e in edges}

    assert marks(told) == {"Ada": False, "Bob": True}
    assert marks(untold) == {"Ada": False, "Bob": False}
    created = gql('mutation { createCircle(kind: INTEREST, name: "Mine") { circle { name } errors { code } } }',
                  token=token(bob))["data"]["createCircle"]
    assert created == {"circle": None, "errors": [{"code": "BLACKLISTED"}]}


def test_a_non_friend_cannot_open_a_chat_or_learn_whether_a_user_exists(gql, people):
    ada, bob, eve, *_ = people
    befriend(ada, bob)
    doc = "mutation M($u: ID!) { openDirectConversation(userId: $u) { conversation { title } errors { code field } } }"
    ok = gql(doc, {"u": user_gid(bob.pk)}, token=token(ada))["data"]["openDirectConversation"]
    assert ok["conversation"]["title"] == "Bob" and ok["errors"] == []
    stranger = gql(doc, {"u": user_gid(ada.pk)}, token=token(eve))["data"]["openDirectConversation"]
    missing = gql(doc, {"u": user_gid(987654321)}, token=token(eve))["data"]["openDirectConversation"]
    assert stranger == missing == {"conversation": None, "errors": [{"code": "NOT_FOUND", "field": "userId"}]}


def test_friend_requests_over_graphql(gql, people):
    ada, bob, *_ = people
    sent = gql('mutation M($u: ID!) { sendFriendRequest(userId: $u, note: "同事") { request { id note } errors { code } } }',
               {"u": user_gid(bob.pk)}, token=token(ada))["data"]["sendFriendRequest"]
    incoming = gql("{ incomingFriendRequests { id note fromUser { displayName } } }", token=token(bob))["data"]
    assert incoming["incomingFriendRequests"] == [{"id": sent["request"]["id"], "note": "同事",
                                                   "fromUser": {"displayName": "Ada"}}]
    answer = gql("mutation M($r: ID!) { respondFriendRequest(requestId: $r, accept: true) { request { status } "
                 "errors { code } } }", {"r": sent["request"]["id"]}, token=token(bob))["data"]["respondFriendRequest"]
    assert answer == {"request": {"status": "accepted"}, "errors": []}
    assert gql("{ myFriends { displayName } }", token=token(ada))["data"]["myFriends"] == [{"displayName": "Bob"}]


def test_moments_timeline_pages_with_a_constant_query_count(gql, people, django_assert_max_num_queries):
    ada, bob, cyd, dan, eve = people
    for friend in (bob, cyd, dan):
        befriend(ada, friend)
    circle = services.create_circle(owner=bob, kind="interest", name="Hikers")
    services.join_circle(user=ada, circle_id=circle.pk)
    for i in range(12):
        author = (bob, cyd, dan)[i % 3]
        post = services.create_post(author=author, text=f"post {i}",
                                    circle_id=circle.pk if author == bob and i % 2 else None)
        services.like_post(user=ada, post_id=post.pk)
        services.comment_on_post(user=author, post_id=post.pk, text=f"c{i}")
        services.comment_on_post(user=ada, post_id=post.pk, text=f"ada {i}")
    services.create_post(author=eve, text="eve is nobody's friend")
    ada_token = token(ada)
    gql("{ myFriends { displayName } }", token=ada_token)  # warm the session caches
    with django_assert_max_num_queries(6):
        first = gql(MOMENTS, token=ada_token)["data"]["moments"]
    with django_assert_max_num_queries(6):
        second = gql(MOMENTS, {"after": first["pageInfo"]["endCursor"]}, token=ada_token)["data"]["moments"]
    texts = [e["node"]["text"] for e in first["edges"] + second["edges"]]
    assert texts == [f"post {i}" for i in range(11, -1, -1)]
    assert all(e["node"]["likedByMe"] and len(e["node"]["comments"]) == 2 for e in first["edges"])
    assert not second["pageInfo"]["hasNextPage"]


def test_my_circles_and_events_lists_have_no_n_plus_one(gql, people, django_assert_max_num_queries):
    import datetime as dt

    from backend.core import clock

    ada, bob, *_ = people
    circles = [services.create_circle(owner=bob, kind="interest", name=f"C{i}") for i in range(6)]
    for circle in circles:
        services.join_circle(user=ada, circle_id=circle.pk)
    for i in range(5):
        event = services.create_event(actor=bob, circle_id=circles[0].pk, title=f"E{i}", place="Here",
                                      starts_at=clock.now() + dt.timedelta(days=3 + i), capacity=1)
        services.rsvp(user=bob, event_id=event.pk, going=True)
        if i % 2:
            services.rsvp(user=ada, event_id=event.pk, going=True)
    ada_token = token(ada)
    gql("{ myFriends { displayName } }", token=ada_token)
    with django_assert_max_num_queries(4):
        mine = gql("{ myCircles { name myRole conversationId } }", token=ada_token)["data"]["myCircles"]
    assert len(mine) == 6 and {c["myRole"] for c in mine} == {"MEMBER"} and all(c["conversationId"] for c in mine)
    doc = "query Q($c: ID!) { circleEvents(circleId: $c) { title goingCount waitlistedCount myRsvp } }"
    with django_assert_max_num_queries(4):
        events = gql(doc, {"c": encode_id("Circle", circles[0].pk)}, token=ada_token)["data"]["circleEvents"]
    assert [(e["title"], e["goingCount"], e["waitlistedCount"], e["myRsvp"]) for e in events] == [
        ("E0", 1, 0, None), ("E1", 1, 1, "WAITLISTED"), ("E2", 1, 0, None), ("E3", 1, 1, "WAITLISTED"),
        ("E4", 1, 0, None)]


def test_only_admins_update_a_circle(gql, people):
    ada, bob, *_ = people
    circle = services.create_circle(owner=ada, kind="community", name="Lane 5")
    services.join_circle(user=bob, circle_id=circle.pk)
    doc = ("mutation M($c: ID!) { updateCircle(circleId: $c, joinPolicy: APPROVAL, description: \"邻里\") "
           "{ circle { joinPolicy description } errors { code } } }")
    refused = gql(doc, {"c": encode_id("Circle", circle.pk)}, token=token(bob))["data"]["updateCircle"]
    assert refused == {"circle": None, "errors": [{"code": "NOT_ALLOWED"}]}
    done = gql(doc, {"c": encode_id("Circle", circle.pk)}, token=token(ada))["data"]["updateCircle"]
    assert done == {"circle": {"joinPolicy": "APPROVAL", "description": "邻里"}, "errors": []}


def test_public_circles_are_listed_and_searchable_hidden_ones_never(gql, people):
    ada, bob, *_ = people
    services.create_circle(owner=ada, kind="alumni", name="清华 2012")
    services.create_circle(owner=ada, kind="community", name="望京 Neighbours")
    services.create_circle(owner=ada, kind="alumni", name="清华 secret", visibility="hidden")
    services.create_circle(owner=ada, kind="alumni", name="清华 invite", visibility="invite_only")
    doc = "query Q($s: String, $k: CircleKind) { publicCircles(search: $s, kind: $k) { edges { node { name } } } }"
    names = [e["node"]["name"] for e in gql(doc, {"s": "清华"}, token=token(bob))["data"]["publicCircles"]["edges"]]
    assert names == ["清华 2012"]
    by_kind = gql(doc, {"k": "COMMUNITY"}, token=token(bob))["data"]["publicCircles"]["edges"]
    assert [e["node"]["name"] for e in by_kind] == ["望京 Neighbours"]



def test_contact_discovery_over_graphql_honours_consent(gql, people, settings):
    ada, bob, cyd, *_ = people
    gql("mutation { setDiscoverability(byPhone: true) { errors { code } } }", token=token(ada))
    find = "mutation M($p: String) { findUser(phone: $p) { user { displayName } errors { code } } }"
    assert gql(find, {"p": ada.phone}, token=token(bob))["data"]["findUser"] == {
        "user": {"displayName": "Ada"}, "errors": []}
    declined = gql(find, {"p": cyd.phone}, token=token(bob))["data"]["findUser"]
    nobody = gql(find, {"p": "+8613999999997"}, token=token(bob))["data"]["findUser"]
    assert declined == nobody == {"user": None, "errors": [{"code": "NOT_FOUND"}]}
    match = "mutation M($p: [String!]!) { matchContacts(phones: $p) { users { displayName } errors { code } } }"
    found = gql(match, {"p": [ada.phone, cyd.phone]}, token=token(bob))["data"]["matchContacts"]
    assert found == {"users": [{"displayName": "Ada"}], "errors": []}
    settings.QUANZI_CIRCLES = {"CONTACT_MATCH_PER_HOUR": 1}
    limited = gql(match, {"p": [ada.phone]}, token=token(bob))["data"]["matchContacts"]
    assert limited == {"users": [], "errors": [{"code": "RATE_LIMITED"}]}
    code = gql("{ myDiscoverability { shareCode } }", token=token(cyd))["data"]["myDiscoverability"]["shareCode"]
    by_code = gql('mutation M($c: String) { findUser(shareCode: $c) { user { displayName } errors { code } } }',
                  {"c": code}, token=token(bob))["data"]["findUser"]
    assert by_code == {"user": {"displayName": "Cyd"}, "errors": []}
