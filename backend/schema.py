"""The root GraphQL schema: each app contributes its Query and Mutation; `make schema` exports the SDL."""

import graphene

from backend.accounts import schema as accounts_schema
from backend.advisors import schema as advisors_schema
from backend.campaigns import schema as campaigns_schema
from backend.chat import schema as chat_schema
from backend.circles import schema as circles_schema
from backend.core import nodes
from backend.core.nodes import NodeQuery
from backend.loans import schema as loans_schema
from backend.notifications import schema as notifications_schema
from backend.payments import schema as payments_schema
from backend.referrals import schema as referrals_schema
from backend.wallet import schema as wallet_schema


class Query(
    NodeQuery,
    accounts_schema.Query,
    chat_schema.Query,
    notifications_schema.Query,
    wallet_schema.Query,
    payments_schema.Query,
    circles_schema.Query,
    referrals_schema.Query,
    advisors_schema.Query,
    campaigns_schema.Query,
    loans_schema.Query,
    graphene.ObjectType,
):
    pass


class Mutation(
    accounts_schema.Mutation,
    chat_schema.Mutation,
    notifications_schema.Mutation,
    wallet_schema.Mutation,
    payments_schema.Mutation,
    circles_schema.Mutation,
    referrals_schema.Mutation,
    advisors_schema.Mutation,
    campaigns_schema.Mutation,
    loans_schema.Mutation,
    graphene.ObjectType,
):
    pass


# Every registered node type is in the schema even when no field returns it yet (node(id:) can).
schema = graphene.Schema(query=Query, mutation=Mutation, types=[t.graphene_type for t in nodes.registered().values()])
