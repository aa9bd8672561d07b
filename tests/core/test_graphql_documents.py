"""A GraphQL document is parsed and validated once per process, then executed from memory: the answers stay the
same (variables, refusals, limits), only the work is not repeated."""

from __future__ import annotations

import pytest

from backend.core import graphql as core_graphql

pytestmark = pytest.mark.django_db

ME = "query Me { me { displayName } }"


@pytest.fixture
def validations(monkeypatch) -> list[str]:
    """The documents graphql-core validated during the test."""
    seen: list[str] = []
    real = core_graphql.validate

    def counting(schema, document, *args, **kwargs):
        seen.append(document.loc.source.body if document.loc else "?")
        return real(schema, document, *args, **kwargs)

    monkeypatch.setattr(core_graphql, "validate", counting)
    return seen


def test_the_same_document_is_validated_once_and_answers_for_each_request(gql, sign_in, validations):
    ada = sign_in("+8613900000001")
    bob = sign_in("+8613900000002")
    query = "query Lookup($first: Int) { me { displayName } notifications(first: $first) { edges { node { id } } } }"
    answers = [gql(query, {"first": n}, token=who["tokens"]["accessToken"])
               for n, who in ((1, ada), (2, bob), (3, ada))]
    assert [a.get("errors") for a in answers] == [None, None, None], answers
    assert [a["data"]["me"]["displayName"] for a in answers] == [
        ada["viewer"]["displayName"], bob["viewer"]["displayName"], ada["viewer"]["displayName"]]
    assert validations.count(query) == 1


def test_a_refused_document_is_not_remembered(gql, validations):
    query = "{ me { noSuchField } }"
    for _ in range(2):
        body = gql.raw({"query": query}).json()
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert validations.count(query) == 2
    assert all(key[0] != query for key in core_graphql._documents._entries)


def test_a_remembered_document_is_checked_again_under_new_limits(gql, sign_in, settings, validations):
    token = sign_in()["tokens"]["accessToken"]
    aliased = "query Aliased { mine: me { displayName } }"
    assert "errors" not in gql(aliased, token=token)
    settings.QUANZI = {**settings.QUANZI, "GRAPHQL_MAX_ALIASES": 0}
    body = gql.raw({"query": aliased}, token=token).json()
    assert body["errors"][0]["extensions"]["code"] == "TOO_MANY_ALIASES"
    assert validations.count(aliased) == 2


def test_an_oversized_document_is_refused_before_parsing_every_time(gql, settings, validations):
    settings.QUANZI = {**settings.QUANZI, "GRAPHQL_MAX_DOCUMENT_CHARS": 20}
    for _ in range(2):
        body = gql.raw({"query": ME}).json()
        assert body["errors"][0]["extensions"]["code"] == "DOCUMENT_TOO_LARGE"
    assert validations == []


def test_at_most_so_many_documents_are_kept(gql, monkeypatch):
    monkeypatch.setattr(core_graphql, "_documents", core_graphql._DocumentCache(2))
    for n in range(5):
        gql.raw({"query": f"query Q{n} {{ __typename }}"})
    assert len(core_graphql._documents) == 2
    assert [key[0] for key in core_graphql._documents._entries] == ["query Q3 { __typename }", "query Q4 { __typename }"]


def test_a_mutation_is_refused_over_get_even_when_remembered(client, gql):
    mutation = 'mutation { requestLoginCode(phone: "+8613900000009") { codeExpiresAt } }'
    gql.raw({"query": mutation})  # remembered by a POST
    response = client.get("/graphql/", {"query": mutation})
    assert response.status_code in (400, 405)
