"""Validation work is linear in the document: fragment bombs, oversized documents, deep JSON, list costs.

The measure counts the selections it looked at (`core.graphql.last_measure.visited`); the tests assert that
count, not a timing, so they say the same thing on any machine.
"""

import json

import pytest

from backend.core import graphql as core_graphql

pytestmark = pytest.mark.django_db


def codes(response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


def fragment_bomb(levels: int) -> str:
    """Each fragment spreads the previous one twice: 2^levels fields if spreads are expanded one by one."""
    parts = ["fragment F0 on User { displayName }"]
    parts += [f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)]
    return f"query {{ me {{ ...F{levels} }} }} " + " ".join(parts)


@pytest.mark.parametrize("levels", [13, 21, 30, 40])
def test_fragment_bomb_is_refused_with_linear_work(gql, levels):
    response = gql.raw({"query": fragment_bomb(levels)})
    assert response.status_code == 400
    assert set(codes(response)) & {"QUERY_TOO_COMPLEX", "QUERY_TOO_DEEP"}, response.json()
    # one visit per selection written in the document (2 per fragment, 1 per operation field), never 2^levels
    assert core_graphql.last_measure.visited <= 2 * levels + 4


def test_small_fragment_chain_passes_and_is_measured_once(gql):
    response = gql.raw({"query": fragment_bomb(5)})  # 32 fields as written: under the cost limit
    assert response.status_code == 200, response.json()
    assert core_graphql.last_measure.visited == 2 * 5 + 3  # me, its spread, 2 per fragment, displayName


def test_long_document_is_refused_before_parsing(gql, settings):
    query = "{ me { " + "displayName " * 3000 + "} }"
    assert len(query) > settings.QUANZI["GRAPHQL_MAX_DOCUMENT_CHARS"]
    response = gql.raw({"query": query})
    assert response.status_code == 400
    assert codes(response) == ["DOCUMENT_TOO_LARGE"]


def test_too_many_tokens_is_refused(gql, settings):
    query = "{ me { " + "a " * (settings.QUANZI["GRAPHQL_MAX_TOKENS"] + 1) + "} }"
    assert len(query) < settings.QUANZI["GRAPHQL_MAX_DOCUMENT_CHARS"]
    response = gql.raw({"query": query})
    assert response.status_code == 400
    assert codes(response) == ["DOCUMENT_TOO_LARGE"]


def test_comments_count_against_the_token_limit(gql, settings):
    query = "{ me { displayName } }" + "\n#" * (settings.QUANZI["GRAPHQL_MAX_TOKENS"] + 1)
    response = gql.raw({"query": query})
    assert codes(response) == ["DOCUMENT_TOO_LARGE"]


def test_deep_nesting_of_inline_fragments_is_refused(gql):
    query = "{ me { " + "... on User { " * 40 + "displayName" + " }" * 40 + " } }"
    response = gql.raw({"query": query})
    assert response.status_code == 400
    assert codes(response) == ["QUERY_TOO_DEEP"]


def test_list_without_first_costs_its_default_page(gql, settings):
    """`devices` is an unpaged list: its items cost as a full page (100), not 1: 1 + 1 + 100 = 102."""
    query = "{ me { devices { name } } }"  # me + devices + 100 × name
    settings.QUANZI = {**settings.QUANZI, "GRAPHQL_MAX_COST": 102}
    assert codes(gql.raw({"query": query})) == ["UNAUTHENTICATED"]  # validated, then run: we did not sign in
    settings.QUANZI = {**settings.QUANZI, "GRAPHQL_MAX_COST": 101}
    response = gql.raw({"query": query})
    assert response.status_code == 400
    assert codes(response) == ["QUERY_TOO_COMPLEX"]


def test_connection_without_first_costs_its_default_page_size(gql, settings):
    """myConversations serves 50 by default: 1 + 50 × (edges + node + id) = 151; `first: 2` costs 7."""
    query = "{ myConversations%s { edges { node { id } } } }"
    settings.QUANZI = {**settings.QUANZI, "GRAPHQL_MAX_COST": 150}
    response = gql.raw({"query": query % ""})
    assert codes(response) == ["QUERY_TOO_COMPLEX"]
    response = gql.raw({"query": query % "(first: 2)"})
    assert codes(response) == ["UNAUTHENTICATED"]  # validated, then run: we did not sign in


def test_deeply_nested_json_body_is_a_coded_bad_request(gql):
    body = '{"query": "{ me { displayName } }", "variables": {"x": ' + "[" * 20000 + "]" * 20000 + "}}"
    response = gql.raw(body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert codes(response) == ["BAD_REQUEST"]


def test_deeply_nested_variables_string_is_a_coded_bad_request(gql):
    """graphene-django parses a `variables` string itself (and caught RecursionError as "invalid JSON")."""
    body = json.dumps({"query": "{ me { displayName } }", "variables": "[" * 20000 + "]" * 20000})
    response = gql.raw(body)
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]
    assert "nests deeper" in response.json()["errors"][0]["message"]


def test_ordinary_nesting_in_variables_is_fine(gql):
    body = json.dumps({"query": "{ __typename }", "variables": {"unused": [[[[{"a": [1, "[[[[[[[["]}]]]]}})
    response = gql.raw(body)
    assert response.status_code == 200, response.json()
