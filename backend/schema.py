"""The root GraphQL schema: each app contributes its Query and Mutation; `make schema` exports the SDL."""

import graphene

from backend.accounts import schema as accounts_schema


class Query(accounts_schema.Query, graphene.ObjectType):
    pass


class Mutation(accounts_schema.Mutation, graphene.ObjectType):
    pass


schema = graphene.Schema(query=Query, mutation=Mutation)
