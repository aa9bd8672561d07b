"""Privacy: nobody sees another user's phone number, and everything that needs a user refuses anonymous
callers with UNAUTHENTICATED (generated from the schema, so a new field is covered the day it is added)."""

from __future__ import annotations

import json

import pytest

from backend.schema import schema
from backend.wallet import services as wallet
from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLList, GraphQLNonNull, GraphQLScalarType

from .conftest import leaks_phone

pytestmark = pytest.mark.django_db

PUBLIC = {"requestLoginCode", "loginWithCode", "loginWithPassword", "refreshTokens",
          "recordShareClick",  # a share link is opened before sign-up (referrals: rate-limited per IP)
          "publicDrawList"}  # campaigns: anyone may replay a lottery's draws (anonymised, no user identity)
SAMPLE = {"ID": "eA==", "String": "x", "Int": 1, "Boolean": True, "Fen": 1, "JSONString": "{}", "Float": 1.0,
          "Date": "2026-01-01",
          "DateTime": "2030-01-01T00:00:00+00:00", "Time": "09:00:00"}


def _sample(gtype):
    if isinstance(gtype, GraphQLNonNull):
        return _sample(gtype.of_type)
    if isinstance(gtype, GraphQLList):
        return [_sample(gtype.of_type)]
    if isinstance(gtype, GraphQLEnumType):
        return next(iter(gtype.values))
    if isinstance(gtype, GraphQLInputObjectType):
        return {name: _sample(f.type) for name, f in gtype.fields.items()}
    assert isinstance(gtype, GraphQLScalarType)
    return SAMPLE[gtype.name]


def _operations():
    gschema = schema.graphql_schema
    for keyword, root in (("query", gschema.query_type), ("mutation", gschema.mutation_type)):
        for name, field in root.fields.items():
            if name in PUBLIC:
                continue
            args = field.args
            decl = ", ".join(f"${a}: {arg.type}" for a, arg in args.items())
            call = ", ".join(f"{a}: ${a}" for a in args)
            selection = "" if isinstance(getattr(field.type, "of_type", field.type), GraphQLScalarType) \
                else " { __typename }"  # what Apollo and Relay add to every selection
            document = f"{keyword} Op{f'({decl})' if decl else ''} {{ {name}{f'({call})' if call else ''}{selection} }}"
            yield pytest.param(document, {a: _sample(arg.type) for a, arg in args.items()}, id=name)


@pytest.mark.parametrize("document,variables", list(_operations()))
def test_anonymous_and_bad_token_callers_are_refused(gql, db, document, variables):
    response = gql(document, variables)
    assert [e["extensions"]["code"] for e in response["errors"]] == ["UNAUTHENTICATED"], response
    response = gql(document, variables, token="not-a-jwt")
    assert [e["extensions"]["code"] for e in response["errors"]] == ["TOKEN_INVALID"], response


def test_typename_works_but_schema_introspection_does_not(gql, world, settings):
    assert gql("{ me { __typename id } }", token=world.ta)["data"]["me"]["__typename"] == "User"
    refused = gql("{ __schema { types { name } } }", token=world.ta)
    assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


EVERYTHING_BOB_CAN_SEE = """
query {
  myConversations { edges { node { id title peer { id displayName avatarUrl }
                                   lastMessage { body sender { id displayName } } } } }
  myWallet { statement(first: 20) { edges { node { amount memo counterparty { displayName userId } } } } }
  notifications(first: 50) { edges { node { title body payload } } }
}
"""


def test_no_response_carries_another_users_phone(gql, world):
    wallet.send_money(sender=world.ada, recipient_id=world.bob.pk, amount=1234, idempotency_key="privacy-1",
                      memo="lunch")
    seen = [json.dumps(gql(EVERYTHING_BOB_CAN_SEE, token=world.tb), ensure_ascii=False)]
    for conversation in (world.group, world.direct):
        seen.append(json.dumps(gql(
            "query Q($c: ID!) { conversation(id: $c) { title peer { displayName } } "
            "messages(conversationId: $c) { edges { node { body system sender { displayName } } } } "
            "conversationMembers(conversationId: $c) { edges { node { user { id displayName avatarUrl } } } } }",
            {"c": world.gid("Conversation", conversation)}, token=world.tb), ensure_ascii=False))
    # a stranger opens a chat with Ada and makes her a group member: still only her display name
    seen.append(json.dumps(gql(
        "mutation M($u: ID!) { openDirectConversation(userId: $u) { conversation { title peer { displayName } } "
        "errors { code } } createGroup(title: \"t\", memberIds: [$u]) { conversation { title } errors { code } } }",
        {"u": world.gid("User", world.ada.pk)}, token=world.te), ensure_ascii=False))
    text = "\n".join(seen)
    assert "Ada" in text and "1234" in text  # the responses are about Ada and the payment …
    assert leaks_phone(text) == []  # … and never show her (or Bob's) number
