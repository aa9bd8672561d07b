"""Payload error codes are a GraphQL enum per app, built from the codes the app declares."""

from __future__ import annotations

import graphene
import pytest

from backend.core.errors import DomainError, declared_codes
from backend.core.graphql import BaseMutation, registered_app_errors
from backend.schema import schema
from graphql import GraphQLEnumType, get_named_type

pytestmark = pytest.mark.django_db

GENERIC = {"INVALID", "NOT_FOUND", "FORBIDDEN", "RATE_LIMITED", "CONFLICT", "UNAUTHENTICATED", "INVALID_PAGE_SIZE",
           "INVALID_CURSOR", "INVALID_PHONE"}


def payload_error_type(mutation: str):
    payload = get_named_type(schema.graphql_schema.mutation_type.fields[mutation].type)
    return get_named_type(payload.fields["errors"].type)


@pytest.mark.parametrize(("mutation", "type_name", "own_codes"), [
    ("loginWithCode", "AccountError", {"OTP_INVALID", "OTP_ATTEMPTS_EXCEEDED", "ACCOUNT_DISABLED", "WEAK_PASSWORD"}),
    ("sendMessage", "ChatError", {"MESSAGE_TOO_LONG", "READ_ONLY_CONVERSATION", "GROUP_FULL", "INVALID_MENTIONS"}),
    ("sendMoney", "WalletError", {"INSUFFICIENT_FUNDS", "IDEMPOTENCY_CONFLICT", "SELF_TRANSFER", "MEMO_INVALID"}),
    ("markNotificationsRead", "NotificationError", {"TOO_MANY_IDS", "INVALID_QUIET_HOURS", "INVALID_TIMEZONE"}),
])
def test_each_app_has_its_own_code_enum(mutation, type_name, own_codes):
    error_type = payload_error_type(mutation)
    assert error_type.name == type_name
    enum = get_named_type(error_type.fields["code"].type)
    assert isinstance(enum, GraphQLEnumType) and enum.name == f"{type_name}Code"
    values = {name: getattr(value.value, "value", value.value) for name, value in enum.values.items()}
    assert own_codes | GENERIC <= set(values)
    assert all(name == value for name, value in values.items())  # the same strings as before the enum


def test_codes_on_the_wire_are_the_same_strings(gql, sms_outbox):
    phone = "+8613700001234"
    gql('mutation($p: String!) { requestLoginCode(phone: $p) { errors { code } } }', {"p": phone})
    result = gql('mutation($p: String!) { loginWithCode(phone: $p, code: "000000") { errors { field code } } }',
                 {"p": phone})
    assert result["data"]["loginWithCode"]["errors"] == [{"field": "code", "code": "OTP_INVALID"}]


def test_every_mutation_payload_has_an_enum_of_codes():
    for name, field in schema.graphql_schema.mutation_type.fields.items():
        code = get_named_type(get_named_type(get_named_type(field.type).fields["errors"].type).fields["code"].type)
        assert isinstance(code, GraphQLEnumType) and code.name.endswith("ErrorCode"), name


def test_every_code_an_app_declares_is_in_its_enum():
    """Codes found in the app's source (DomainError subclasses and literal code=…) are all in its enum."""
    for registered in registered_app_errors():
        enum_values = set(get_named_type(schema.graphql_schema.get_type(registered.error_type._meta.name)
                                         .fields["code"].type).values)
        for package in registered.packages:
            assert set(declared_codes(package)) <= enum_values, package
        assert GENERIC <= enum_values


class RaisesUndeclared(BaseMutation):
    ok = graphene.Boolean()

    @classmethod
    def perform(cls, root, info):
        raise DomainError("Nope.", code="SOMETHING_NOBODY_DECLARED")


class _Mutation(graphene.ObjectType):
    raises_undeclared = RaisesUndeclared.Field()


class _Query(graphene.ObjectType):
    ok = graphene.Boolean()


def test_a_code_missing_from_the_enum_fails_loudly_under_tests_and_degrades_in_production(settings, caplog):
    probe = graphene.Schema(query=_Query, mutation=_Mutation)
    result = probe.execute("mutation { raisesUndeclared { errors { code } } }")
    assert result.errors and "SOMETHING_NOBODY_DECLARED" in str(result.errors[0])
    settings.QUANZI = {**settings.QUANZI, "STRICT_ERROR_CODES": False}
    result = probe.execute("mutation { raisesUndeclared { errors { code message } } }")
    assert result.errors is None
    assert result.data["raisesUndeclared"]["errors"] == [{"code": "INVALID", "message": "Nope."}]
    assert "undeclared error code SOMETHING_NOBODY_DECLARED" in caplog.text
