"""BOLA for circles: every operation that takes a circle, post, comment, event or request id answers a stranger
exactly as it answers a missing id, and changes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.apps import apps

from backend.accounts.ids import user_gid
from backend.accounts.services import DeviceInfo, _start_session
from backend.circles import services
from backend.core import clock
from backend.core.ids import encode_id
from tests.security.test_graphql_bola import _answer

from .conftest import befriend, new_user

MISSING = 987_654_321


def snapshot() -> dict:
    state = {}
    for label in ("circles", "chat", "notifications"):
        for model in apps.get_app_config(label).get_models():
            fields = [f.attname for f in model._meta.concrete_fields]
            state[model._meta.label_lower] = list(model.objects.order_by("pk").values_list(*fields))
    return state


@pytest.fixture
def world(db):
    ada, bob, eve = new_user("Ada"), new_user("Bob"), new_user("Eve")
    befriend(ada, bob)
    circle = services.create_circle(owner=ada, kind="friends", name="Secret", visibility="hidden",
                                    join_policy="approval", requires_verification=True)
    invitation = services.invite_user(actor=ada, circle_id=circle.pk, user_id=bob.pk)  # hidden: by invitation
    services.decide_verification(actor=ada, approve=True, request_id=services.submit_verification_proof(
        user=bob, circle_id=circle.pk, proof_url="https://img.example/p.jpg").pk)
    services.accept_invitation(user=bob, request_id=invitation.pk)
    carol = new_user("Carol")
    befriend(ada, carol)
    services.invite_user(actor=ada, circle_id=circle.pk, user_id=carol.pk)
    pending_proof = services.submit_verification_proof(user=carol, circle_id=circle.pk,
                                                       proof_url="https://img.example/c.jpg")
    post = services.create_post(author=ada, text="secret", circle_id=circle.pk)
    friends_post = services.create_post(author=ada, text="for friends")
    comment = services.comment_on_post(user=bob, post_id=post.pk, text="psst")
    event = services.create_event(actor=ada, circle_id=circle.pk, title="Meet", place="Here",
                                  starts_at=clock.now() + dt.timedelta(days=2), capacity=5)
    services.rsvp(user=bob, event_id=event.pk, going=True)
    request = services.send_friend_request(user=new_user("Dan"), to_user_id=ada.pk)
    return {
        "eve": eve, "token": _start_session(eve, DeviceInfo()).access_token,
        "Circle": circle.pk, "Post": post.pk, "FriendsPost": friends_post.pk, "PostComment": comment.pk,
        "CircleEvent": event.pk, "FriendRequest": request.pk, "VerificationRequest": pending_proof.pk,
        "bob": user_gid(bob.pk),
    }


E = "errors { field code message }"
OPERATIONS = {
    "circle": ("query Q($id: ID!) { circle(id: $id) { name } }", "Circle"),
    "circleMembers": ("query Q($id: ID!) { circleMembers(circleId: $id) { edges { node { role } } } }", "Circle"),
    "circleJoinRequests": ("query Q($id: ID!) { circleJoinRequests(circleId: $id) { note } }", "Circle"),
    "trustProfile": ("query Q($id: ID!) { trustProfile(circleId: $id) { score } }", "Circle"),
    "circleEvents": ("query Q($id: ID!) { circleEvents(circleId: $id) { title } }", "Circle"),
    "joinCircle": (f"mutation M($id: ID!) {{ joinCircle(circleId: $id) {{ pending {E} }} }}", "Circle"),
    "updateCircle": (f'mutation M($id: ID!) {{ updateCircle(circleId: $id, description: "x") {{ {E} }} }}', "Circle"),
    "leaveCircle": (f"mutation M($id: ID!) {{ leaveCircle(circleId: $id) {{ ok {E} }} }}", "Circle"),
    "createInviteCode": (f"mutation M($id: ID!) {{ createInviteCode(circleId: $id, expiresInHours: 1, maxUses: 1) "
                         f"{{ invite {{ code }} {E} }} }}", "Circle"),
    "inviteToCircle": (f"mutation M($id: ID!, $u: ID!) {{ inviteToCircle(circleId: $id, userId: $u) {{ ok {E} }} }}",
                       "Circle"),
    "removeCircleMember": (f"mutation M($id: ID!, $u: ID!) {{ removeCircleMember(circleId: $id, userId: $u) "
                           f"{{ ok {E} }} }}", "Circle"),
    "vouch": (f"mutation M($id: ID!, $u: ID!) {{ vouch(circleId: $id, userId: $u) {{ {E} }} }}", "Circle"),
    "requestVerification": (f'mutation M($id: ID!) {{ requestVerification(circleId: $id, proofUrl: '
                            f'"https://x.example/p.jpg") {{ {E} }} }}', "Circle"),
    "createPost.circle": (f'mutation M($id: ID!) {{ createPost(circleId: $id, text: "hi") {{ {E} }} }}', "Circle"),
    "createCircleEvent": (f'mutation M($id: ID!) {{ createCircleEvent(circleId: $id, title: "t", place: "p", '
                          f'startsAt: "2031-01-01T00:00:00+00:00", capacity: 3) {{ {E} }} }}', "Circle"),
    "reportAbuse.circle": (f'mutation M($id: ID!) {{ reportAbuse(circleId: $id, reason: "x") {{ ok {E} }} }}',
                           "Circle"),
    "likePost": (f"mutation M($id: ID!) {{ likePost(postId: $id, liked: true) {{ {E} }} }}", "Post"),
    "likePost.friends": (f"mutation M($id: ID!) {{ likePost(postId: $id, liked: true) {{ {E} }} }}", "FriendsPost"),
    "commentOnPost": (f'mutation M($id: ID!) {{ commentOnPost(postId: $id, text: "x") {{ {E} }} }}', "Post"),
    "deletePost": (f"mutation M($id: ID!) {{ deletePost(postId: $id) {{ ok {E} }} }}", "Post"),
    "reportAbuse.post": (f'mutation M($id: ID!) {{ reportAbuse(postId: $id, reason: "x") {{ ok {E} }} }}', "Post"),
    "deleteComment": (f"mutation M($id: ID!) {{ deleteComment(commentId: $id) {{ ok {E} }} }}", "PostComment"),
    "rsvpEvent": (f"mutation M($id: ID!) {{ rsvpEvent(eventId: $id, going: true) {{ status {E} }} }}",
                  "CircleEvent"),
    "cancelCircleEvent": (f"mutation M($id: ID!) {{ cancelCircleEvent(eventId: $id) {{ ok {E} }} }}", "CircleEvent"),
    "markAttendance": (f"mutation M($id: ID!, $u: ID!) {{ markAttendance(eventId: $id, userId: $u, attended: true) "
                       f"{{ ok {E} }} }}", "CircleEvent"),
    "respondFriendRequest": (f"mutation M($id: ID!) {{ respondFriendRequest(requestId: $id, accept: true) "
                             f"{{ {E} }} }}", "FriendRequest"),
    "decideVerification": (f"mutation M($id: ID!) {{ decideVerification(requestId: $id, approve: true) {{ {E} }} }}",
                           "VerificationRequest"),
}
TYPE_NAME = {"FriendsPost": "Post"}


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_a_strangers_id_is_answered_like_a_missing_one_and_changes_nothing(gql, world, op):
    document, key = OPERATIONS[op]
    type_name = TYPE_NAME.get(key, key)
    before = snapshot()

    def ask(pk):
        variables = {"id": encode_id(type_name, pk)}
        if "$u" in document:
            variables["u"] = world["bob"]
        return _answer(gql(document, variables, token=world["token"]))

    victim, missing = ask(world[key]), ask(MISSING)
    assert victim == missing, op
    assert snapshot() == before, op
