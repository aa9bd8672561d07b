"""GraphQL fuzzing with schemathesis: every query and mutation in the schema, with generated arguments and
selections, sent to a real Daphne process as a signed-in user.

Guaranteed: no HTTP 5xx, every response is GraphQL JSON, every error carries `extensions.code`, no error is
INTERNAL_ERROR (an unhandled exception in a resolver), and the server's log has no traceback or ERROR line.
Bounded (MAX_EXAMPLES per operation) and deterministic (hypothesis derandomized: the same cases every run).
"""

from __future__ import annotations

import json
import os
import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes
from schemathesis.specs.graphql.scalars import CUSTOM_SCALARS

from backend.circles import services as circles
from backend.schema import schema as backend_schema
from graphql import print_schema
from tests.security.conftest import build_world

# The schema's own scalars, as a client (or an attacker) might send them
_any_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=3), max_leaves=8)
schemathesis.graphql.scalar("Fen", st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(nodes.Int), st.floats(allow_nan=False).map(nodes.Float),
    st.text(max_size=12).map(nodes.String)))
schemathesis.graphql.scalar("JSONString", _any_json.map(lambda v: nodes.String(json.dumps(v))))
schemathesis.graphql.scalar("GenericScalar", st.one_of(st.integers().map(nodes.Int), st.text(max_size=20).map(
    nodes.String), st.booleans().map(nodes.Boolean)))

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "10"))
# Mutations that end the fuzzing user's own session: run last, so every other operation is fuzzed signed in.
SESSION_ENDING = {"logout", "logoutAllDevices"}
TIMEOUT = 120  # seconds per request: generous, CI machines are shared; a hang still fails
LOG_PROBLEM = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|Exception in ")


def problems_of(status: int, body: object) -> list[str]:
    """What is wrong with one answer of the endpoint (empty when it is a proper GraphQL answer)."""
    if status >= 500:
        return [f"HTTP {status}"]
    if not isinstance(body, dict) or not ({"data", "errors"} & set(body)):
        return [f"HTTP {status}: not a GraphQL response: {str(body)[:200]}"]
    found = []
    for error in body.get("errors") or []:
        code = (error.get("extensions") or {}).get("code")
        if not code:
            found.append(f"error without extensions.code: {error}")
        elif code == "INTERNAL_ERROR":
            found.append(f"INTERNAL_ERROR: {error}")
    return found


def fuzz_operation(operation, url: str, headers: dict, found: dict, reached: set) -> None:
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None, print_blob=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def run(case):
        document = case.body if isinstance(case.body, dict) else {"query": case.body}  # a GraphQL case's body is
        response = requests.post(url, json=document, headers=headers, timeout=TIMEOUT)  # the document itself
        try:
            body = response.json()
        except ValueError:
            body = response.text
        field = operation.label.split(".", 1)[1]
        if isinstance(body, dict) and not body.get("errors") and (body.get("data") or {}).get(field) is not None:
            reached.add(operation.label)
        for problem in problems_of(response.status_code, body):
            found.setdefault(operation.label, []).append(f"{problem}\n  request: {document}")

    run()


def real_ids(world) -> list[str]:
    """Ids of real objects (Ada's, her friend Bob's, stranger Eve's), so fuzzed arguments reach past NOT_FOUND."""
    post = circles.create_post(author=world.ada, text="fuzz me")
    circle = circles.create_circle(owner=world.ada, kind="interest", name="Fuzzers", join_policy="approval")
    return [world.gid("User", u.pk) for u in (world.ada, world.bob, world.eve)] + [
        world.gid("Conversation", world.group), world.gid("Conversation", world.direct),
        world.gid("Message", world.message), world.gid("Message", world.bob_message),
        world.gid("Device", world.ada_device), world.gid("Notification", world.ada_notification),
        world.gid("Post", post.pk), world.gid("Circle", circle.pk)]


@pytest.fixture
def id_scalar():
    """IDs drawn from real objects half the time, from hypothesis' own strings otherwise."""
    def install(ids: list[str]) -> None:
        CUSTOM_SCALARS["ID"] = st.one_of(st.sampled_from(ids), st.text(max_size=40)).map(nodes.String)

    yield install
    CUSTOM_SCALARS.pop("ID", None)


def test_fuzzed_queries_and_mutations_get_coded_answers_and_no_server_errors(daphne_nodes, id_scalar):
    world = build_world()
    id_scalar(real_ids(world))
    node, = daphne_nodes(1)
    url = f"{node.http}/graphql/"
    headers = {"Authorization": f"Bearer {world.ta}"}
    me = requests.post(url, json={"query": "{ me { id } }"}, headers=headers, timeout=TIMEOUT).json()
    assert me == {"data": {"me": {"id": world.gid("User", world.ada.pk)}}}  # the fuzzing runs signed in as Ada
    schema = schemathesis.graphql.from_file(print_schema(backend_schema.graphql_schema))
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: op.label.split(".", 1)[1] in SESSION_ENDING)
    assert len(operations) > 100  # the whole schema: queries and mutations
    found: dict[str, list[str]] = {}
    reached: set[str] = set()  # operations that answered with data at least once: the fuzzing gets past auth
    for operation in operations:
        fuzz_operation(operation, url, headers, found, reached)
    log = node.output()
    print(f"{len(operations)} operations, {len(reached)} answered with data")
    assert found == {}, "\n".join(f"{label}: {p}" for label, ps in found.items() for p in ps[:3])
    assert not LOG_PROBLEM.search(log), log[-5000:]
    assert len(reached) > len(operations) // 3, sorted(reached)
