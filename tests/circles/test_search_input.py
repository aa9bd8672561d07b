"""publicCircles(search:) with text PostgreSQL cannot take (found by tests/fuzz: a NUL was an INTERNAL_ERROR)."""

from __future__ import annotations

import pytest

from tests.chat.conftest import new_user, token_for

pytestmark = pytest.mark.django_db

DOC = "query Q($s: String) { publicCircles(search: $s) { edges { node { name } } } }"


@pytest.mark.parametrize("search", ["清华\x00", "\x00", "a\ud800"])
def test_a_search_with_a_nul_or_a_lone_surrogate_is_refused_with_a_code(gql, search):
    answer = gql(DOC, {"s": search}, token=token_for(new_user("Bob")))
    assert (answer["data"] or {}).get("publicCircles") is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["INVALID_SEARCH"]
