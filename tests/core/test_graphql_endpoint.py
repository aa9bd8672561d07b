"""The GraphQL endpoint refuses what it should: malformed bodies, batches, deep or costly documents."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def codes(response_json: dict) -> list[str]:
    return [e["extensions"]["code"] for e in response_json["errors"]]


def test_malformed_json_body(gql):
    response = gql.raw("{not json")
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_REQUEST"]


def test_syntax_error(gql):
    response = gql.raw({"query": "{ me { displayName "})
    assert response.status_code == 400
    assert codes(response.json()) == ["GRAPHQL_PARSE_FAILED"]


def test_unknown_field_is_a_validation_error(gql):
    response = gql.raw({"query": "{ nope }"})
    assert response.status_code == 400
    assert codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"]


def test_wrong_argument_type_is_rejected(gql):
    response = gql.raw({"query": 'mutation { requestLoginCode(phone: 123) { errors { code } } }'})
    assert response.status_code == 400
    assert codes(response.json()) == ["GRAPHQL_VALIDATION_FAILED"]


def test_query_must_be_a_string(gql):
    response = gql.raw({"query": {"evil": True}})
    assert response.status_code == 400


def test_batching_is_off(gql):
    response = gql.raw([{"query": "{ me { phone } }"}, {"query": "{ me { phone } }"}])
    assert response.status_code == 400


def test_depth_limit(gql, settings):
    settings.QUANZI = {**settings.QUANZI, "GRAPHQL_MAX_DEPTH": 1}
    assert gql.raw({"query": "{ me { phone } }"}).status_code == 200
    response = gql.raw({"query": "{ me { devices { name } } }"})
    assert response.status_code == 400
    assert codes(response.json()) == ["QUERY_TOO_DEEP"]


def test_alias_limit(gql, settings):
    aliases = " ".join(f"a{i}: __typename" for i in range(settings.QUANZI["GRAPHQL_MAX_ALIASES"] + 1))
    response = gql.raw({"query": "{ " + aliases + " }"})
    assert response.status_code == 400
    assert "TOO_MANY_ALIASES" in codes(response.json())


def test_cost_limit(gql, settings):
    settings.QUANZI = {**settings.QUANZI, "GRAPHQL_MAX_COST": 3}
    response = gql.raw({"query": "{ me { phone displayName avatarUrl kycLevel } }"})
    assert response.status_code == 400
    assert "QUERY_TOO_COMPLEX" in codes(response.json())


def test_introspection_is_off_without_debug(gql):
    response = gql.raw({"query": "{ __schema { types { name } } }"})
    assert response.status_code == 400
    assert "introspection" in response.json()["errors"][0]["message"].lower()


def test_graphiql_is_not_served_without_debug(client):
    response = client.get("/graphql/", HTTP_ACCEPT="text/html")
    assert b"graphiql" not in response.content.lower()


def test_committed_schema_is_up_to_date():
    """`make schema` writes graphql/schema.graphql; a stale contract fails here."""
    from backend.schema import schema
    from graphql import print_schema

    committed = (ROOT / "graphql" / "schema.graphql").read_text()
    assert print_schema(schema.graphql_schema).strip() == committed.strip(), (
        "graphql/schema.graphql is stale: run `make schema`"
    )


def test_graphiql_loads_only_our_own_static_files(rf, settings):
    """Bank networks have no internet: every script and stylesheet of GraphiQL comes from this server."""
    import re

    from django.contrib.staticfiles import finders
    from django.contrib.staticfiles.views import serve

    from backend.core.graphql import QuanziGraphQLView

    settings.DEBUG = True
    view = QuanziGraphQLView.as_view(graphiql=True)
    response = view(rf.get("/graphql/", HTTP_ACCEPT="text/html"))
    html = response.content.decode()
    assert response.status_code == 200 and "GRAPHENE_SETTINGS" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 9
    for url in assets:
        assert url.startswith(settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL)
        assert "//" not in url and ":" not in url, url
        relative = url.split("/static/", 1)[1]
        assert finders.find(relative), url
        served = serve(rf.get(url), relative)
        assert served.status_code == 200
    assert not re.search(r"https?://", re.sub(r"<!--.*?-->", "", html, flags=re.S))
