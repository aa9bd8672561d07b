"""Chat over GraphQL: conversation list without N+1, history by seq both ways, mutations, scoping."""

import pytest

from backend.chat import services
from backend.chat.models import Message

from .conftest import gid, new_user, token_for

pytestmark = pytest.mark.django_db

MY_CONVERSATIONS = """
query($first: Int, $after: String) { myConversations(first: $first, after: $after) {
  edges { cursor node { id kind title unreadCount lastSeq muted myRole memberCount peer { id displayName }
    lastMessage { seq body sender { displayName } } } }
  pageInfo { hasNextPage endCursor } } }
"""
MESSAGES = """
query($c: ID!, $first: Int, $after: String, $last: Int, $before: String) {
  messages(conversationId: $c, first: $first, after: $after, last: $last, before: $before) {
    edges { cursor node { id seq kind body recalled sender { id displayName } system card attachment { url } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }
"""
SEND = """
mutation($input: SendMessageInput!) { sendMessage(input: $input) {
  duplicate message { id seq body } errors { field code message } } }
"""


def test_conversation_list_orders_by_activity_without_n_plus_one(gql, django_assert_max_num_queries):
    me = new_user("Me")
    friends = [new_user(f"Friend {i}") for i in range(12)]
    conversations = []
    for friend in friends:
        conversation = services.open_direct_conversation(user=me, other_user_id=friend.pk)
        services.send_message(conversation_id=conversation.pk, sender=friend, client_msg_id=f"f{friend.pk}",
                              text=f"hello from {friend.display_name}")
        conversations.append(conversation)
    group = services.create_group(owner=friends[0], title="Book club", member_ids=[me.pk, friends[1].pk])
    services.send_message(conversation_id=conversations[3].pk, sender=me, client_msg_id="late", text="newest")
    token = token_for(me)
    with django_assert_max_num_queries(8):
        data = gql(MY_CONVERSATIONS, {"first": 20}, token=token)["data"]["myConversations"]
    nodes = [e["node"] for e in data["edges"]]
    assert len(nodes) == 13
    assert nodes[0]["id"] == gid("Conversation", conversations[3].pk)  # most recent activity first
    assert nodes[0]["lastMessage"]["body"] == "newest" and nodes[0]["unreadCount"] == 0
    assert nodes[1]["id"] == gid("Conversation", group.pk) and nodes[1]["title"] == "Book club"
    direct = next(n for n in nodes if n["id"] == gid("Conversation", conversations[5].pk))
    assert direct["title"] == "Friend 5" and direct["peer"]["displayName"] == "Friend 5"
    assert direct["unreadCount"] == 1 and direct["lastMessage"]["sender"]["displayName"] == "Friend 5"
    # keyset pages: no duplicates, no gaps
    page1 = gql(MY_CONVERSATIONS, {"first": 5}, token=token)["data"]["myConversations"]
    page2 = gql(MY_CONVERSATIONS, {"first": 100, "after": page1["pageInfo"]["endCursor"]}, token=token)
    ids = [e["node"]["id"] for e in page1["edges"]] + [e["node"]["id"] for e in page2["data"]["myConversations"]["edges"]]
    assert ids == [n["id"] for n in nodes] and page1["pageInfo"]["hasNextPage"]
    too_many = gql(MY_CONVERSATIONS, {"first": 101}, token=token)
    assert too_many["errors"][0]["extensions"]["code"] == "INVALID_PAGE_SIZE"


def test_history_pages_by_seq_in_both_directions(gql, django_assert_max_num_queries, settings):
    settings.QUANZI_CHAT = {"SEND_LIMIT": 1000}
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    for i in range(1, 121):
        services.send_message(conversation_id=conversation.pk, sender=ada if i % 2 else bob,
                              client_msg_id=f"h{i}", text=f"message {i}")
    token, c = token_for(bob), gid("Conversation", conversation.pk)
    with django_assert_max_num_queries(6):
        newest = gql(MESSAGES, {"c": c}, token=token)["data"]["messages"]
    assert [e["node"]["seq"] for e in newest["edges"]] == list(range(71, 121))
    assert newest["pageInfo"]["hasPreviousPage"] and not newest["pageInfo"]["hasNextPage"]
    back = gql(MESSAGES, {"c": c, "last": 100, "before": newest["pageInfo"]["startCursor"]}, token=token)
    assert [e["node"]["seq"] for e in back["data"]["messages"]["edges"]] == list(range(1, 71))
    assert not back["data"]["messages"]["pageInfo"]["hasPreviousPage"]
    forward = gql(MESSAGES, {"c": c, "first": 10, "after": back["data"]["messages"]["edges"][4]["cursor"]},
                  token=token)["data"]["messages"]
    assert [e["node"]["seq"] for e in forward["edges"]] == list(range(6, 16)) and forward["pageInfo"]["hasNextPage"]
    assert forward["edges"][0]["node"]["body"] == "message 6"
    assert forward["edges"][0]["node"]["sender"]["id"] == gid("User", bob.pk)


def test_non_members_learn_nothing(gql):
    ada, bob, eve = new_user("Ada"), new_user("Bob"), new_user("Eve")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    services.send_message(conversation_id=conversation.pk, sender=ada, client_msg_id="s", text="secret")
    c, token = gid("Conversation", conversation.pk), token_for(eve)
    assert gql("query($id: ID!) { conversation(id: $id) { title } }", {"id": c}, token=token)["data"] == {
        "conversation": None}
    history = gql(MESSAGES, {"c": c}, token=token)
    assert history["errors"][0]["extensions"]["code"] == "NOT_FOUND" and history["data"] is None
    unknown = gql(MESSAGES, {"c": gid("Conversation", 99999)}, token=token)
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"  # the same answer as for an existing one
    sent = gql(SEND, {"input": {"conversationId": c, "clientMsgId": "x", "text": "let me in"}}, token=token)
    assert sent["data"]["sendMessage"]["errors"][0]["code"] == "NOT_FOUND"
    assert gql(MY_CONVERSATIONS, token=token)["data"]["myConversations"]["edges"] == []
    members = gql("query($c: ID!) { conversationMembers(conversationId: $c) { edges { node { role } } } }",
                  {"c": c}, token=token)
    assert members["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    read = gql("mutation($c: ID!) { markConversationRead(conversationId: $c, seq: 1) { errors { code } } }",
               {"c": c}, token=token)
    assert read["data"]["markConversationRead"]["errors"] == [{"code": "NOT_FOUND"}]
    message_id = gid("Message", Message.objects.get(conversation=conversation).pk)
    recall = gql("mutation($m: ID!) { recallMessage(messageId: $m) { errors { code } } }", {"m": message_id},
                 token=token)
    assert recall["data"]["recallMessage"]["errors"] == [{"code": "NOT_FOUND"}]
    anonymous = gql(MY_CONVERSATIONS)
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_group_lifecycle_through_mutations(gql):
    ada, bob, cyd = new_user("Ada"), new_user("Bob"), new_user("Cyd")
    token = token_for(ada)
    created = gql("""mutation($t: String!, $m: [ID!]!) { createGroup(title: $t, memberIds: $m) {
        conversation { id title myRole memberCount } errors { code field } } }""",
                  {"t": "Weekend", "m": [gid("User", bob.pk)]}, token=token)["data"]["createGroup"]
    assert created["errors"] == [] and created["conversation"]["myRole"] == "OWNER"
    c = created["conversation"]["id"]
    added = gql("""mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) {
        conversation { memberCount } errors { code } } }""", {"c": c, "u": [gid("User", cyd.pk)]}, token=token)
    assert added["data"]["addMembers"]["conversation"]["memberCount"] == 3
    bad = gql("""mutation($c: ID!, $t: String!) { renameConversation(conversationId: $c, title: $t) {
        errors { code field } } }""", {"c": c, "t": "  "}, token=token)
    assert bad["data"]["renameConversation"]["errors"] == [{"code": "INVALID_TITLE", "field": "title"}]
    removed = gql("""mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) {
        conversation { memberCount } errors { code } } }""", {"c": c, "u": gid("User", cyd.pk)}, token=token)
    assert removed["data"]["removeMember"]["conversation"]["memberCount"] == 2
    muted = gql("""mutation($c: ID!) { muteConversation(conversationId: $c, muted: true) {
        conversation { muted } errors { code } } }""", {"c": c}, token=token_for(bob))
    assert muted["data"]["muteConversation"]["conversation"]["muted"] is True
    history = gql(MESSAGES, {"c": c}, token=token)["data"]["messages"]["edges"]
    assert [e["node"]["system"]["event"] for e in history] == ["group_created", "members_added", "member_removed"]
    assert gql(MESSAGES, {"c": c}, token=token_for(cyd))["errors"][0]["extensions"]["code"] == "NOT_FOUND"


def test_send_is_idempotent_and_recall_erases_the_body_from_the_api(gql):
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    c, token = gid("Conversation", conversation.pk), token_for(ada)
    first = gql(SEND, {"input": {"conversationId": c, "clientMsgId": "k1", "text": "oops, wrong chat"}}, token=token)
    again = gql(SEND, {"input": {"conversationId": c, "clientMsgId": "k1", "text": "oops, wrong chat"}}, token=token)
    assert first["data"]["sendMessage"]["duplicate"] is False and again["data"]["sendMessage"]["duplicate"] is True
    assert first["data"]["sendMessage"]["message"] == again["data"]["sendMessage"]["message"]
    assert Message.objects.filter(conversation=conversation).count() == 1
    recalled = gql("mutation($m: ID!) { recallMessage(messageId: $m) { message { body recalled } errors { code } } }",
                   {"m": first["data"]["sendMessage"]["message"]["id"]}, token=token)["data"]["recallMessage"]
    assert recalled == {"message": {"body": None, "recalled": True}, "errors": []}
    for viewer in (ada, bob):
        node = gql(MESSAGES, {"c": c}, token=token_for(viewer))["data"]["messages"]["edges"][0]["node"]
        assert node["recalled"] is True and node["body"] is None and node["seq"] == 1
        listed = gql(MY_CONVERSATIONS, token=token_for(viewer))["data"]["myConversations"]["edges"][0]["node"]
        assert listed["lastMessage"]["body"] is None
    resend = gql(SEND, {"input": {"conversationId": c, "clientMsgId": "k1", "text": "oops, wrong chat"}}, token=token)
    assert resend["data"]["sendMessage"]["message"]["body"] is None  # the original, still recalled


def test_send_validation_errors_are_payload_errors(gql):
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    c, token = gid("Conversation", conversation.pk), token_for(ada)
    empty = gql(SEND, {"input": {"conversationId": c, "clientMsgId": "e", "text": ""}}, token=token)
    assert empty["data"]["sendMessage"]["errors"] == [{"field": "text", "code": "EMPTY_MESSAGE",
                                                       "message": "The message is empty."}]
    garbage = gql(SEND, {"input": {"conversationId": "not-an-id", "clientMsgId": "e", "text": "x"}}, token=token)
    assert garbage["data"]["sendMessage"]["errors"][0]["code"] == "NOT_FOUND"
    image = gql(SEND, {"input": {"conversationId": c, "clientMsgId": "img", "kind": "IMAGE",
                                 "attachment": {"url": "https://cdn.example/a.png", "width": 10, "height": 10}}},
                token=token)
    assert image["data"]["sendMessage"]["errors"] == []
    assert Message.objects.filter(conversation=conversation).count() == 1
