"""Shared fixtures. CI sets REQUIRE_SERVICES=1: tests that need PostgreSQL or Redis then fail instead of skipping."""

from __future__ import annotations

import json
import os
import re

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from backend.accounts.sms import OutboxSmsSender
from backend.advisors.services.service_accounts import forget_security_account
from backend.core import clock, presence
from backend.core.graphql import forget_documents
from backend.core.standins import STAGING_OPT_INS
from tests import frames

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"

# Daphne and Celery processes started by tests run as production does (DEBUG off, this run's secrets, which
# settings exports to the environment) with the development stand-ins explicitly opted in.
CHILD_PROCESS_OPT_INS = STAGING_OPT_INS


def _need(condition: bool, what: str) -> None:
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (REQUIRE_SERVICES=1) but not configured")
    pytest.skip(f"needs {what}")


@pytest.fixture
def require_postgres():
    _need(connection.vendor == "postgresql", "PostgreSQL (DATABASE_URL)")


@pytest.fixture
def require_redis():
    _need(bool(settings.REDIS_URL), "Redis (REDIS_URL)")


@pytest.fixture(autouse=True)
def _isolation(settings):
    # STRICT_ERROR_CODES: a mutation raising a code its app's GraphQL enum lacks fails the test.
    settings.QUANZI = {**settings.QUANZI, "SMS_SENDER": "backend.accounts.sms.OutboxSmsSender",
                       "STRICT_ERROR_CODES": True}
    # In-process sockets use the in-memory layer: a channels-redis layer bound to pytest-asyncio's per-test
    # loops could hang a loop's teardown. The Redis layer is exercised where it matters, by the end-to-end
    # tests' Daphne processes (which read REDIS_URL from the environment, not from these settings).
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    OutboxSmsSender.outbox.clear()
    cache.clear()
    presence.clear_local()
    forget_security_account()  # remembered per process for a few seconds
    forget_documents()  # GraphQL documents validated once per process
    clock.reset()
    yield
    clock.reset()


def race(fn, threads: int, *, timeout: float = 30) -> list:
    """Run `fn` in this many threads released together (a barrier), each with its own database connection;
    returns their results (concurrency tests on PostgreSQL). `timeout`: how long to wait for each thread."""
    import threading

    barrier, results = threading.Barrier(threads), []

    def contender():
        try:
            barrier.wait()
            results.append(fn())
        finally:
            connection.close()

    running = [threading.Thread(target=contender) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join(timeout)
    return results
@pytest.fixture(autouse=True)
def _documented_frames_only(monkeypatch):
    """Every frame an in-process socket test receives must match its JSON Schema in docs/websocket-protocol.md."""
    frames.install(monkeypatch)


@pytest.fixture
def sms_outbox() -> list[tuple[str, str]]:
    return OutboxSmsSender.outbox


def last_code(outbox, phone: str) -> str:
    for to, text in reversed(outbox):
        if to == phone:
            return re.search(r"code is (\d{6})", text).group(1)
    raise AssertionError(f"no SMS to {phone}")


class GraphQLClient:
    def __init__(self, client):
        self.client = client
        self.token: str | None = None

    def raw(self, body, *, token: str | None = None, content_type="application/json", **extra):
        headers = {}
        token = token if token is not None else self.token
        if token:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.client.post("/graphql/", data=data, content_type=content_type, **headers, **extra)

    def __call__(self, query: str, variables: dict | None = None, *, token: str | None = None, **extra) -> dict:
        response = self.raw({"query": query, "variables": variables or {}}, token=token, **extra)
        return response.json()


@pytest.fixture
def gql(client) -> GraphQLClient:
    return GraphQLClient(client)


LOGIN = """
mutation Login($phone: String!, $code: String!, $device: DeviceInput) {
  loginWithCode(phone: $phone, code: $code, device: $device) {
    created
    tokens { accessToken refreshToken accessTokenExpiresAt }
    viewer { id displayName phone }
    errors { field code message }
  }
}
"""
REQUEST_CODE = """
mutation Code($phone: String!) { requestLoginCode(phone: $phone) { codeExpiresAt errors { field code message } } }
"""


@pytest.fixture
def sign_in(gql, sms_outbox):
    """Sign a phone number in through the real OTP flow; returns the loginWithCode payload."""

    def _sign_in(phone: str = "+8613900000001", device: dict | None = None) -> dict:
        assert gql(REQUEST_CODE, {"phone": phone})["data"]["requestLoginCode"]["errors"] == []
        payload = gql(
            LOGIN,
            {"phone": phone, "code": last_code(sms_outbox, phone), "device": device or {"platform": "ANDROID"}},
        )["data"]["loginWithCode"]
        assert payload["errors"] == [], payload
        return payload

    return _sign_in


@pytest.fixture
def ops(client):
    """A Django test client signed in to the admin as an operations superuser; returns (client, staff)."""
    from backend.accounts.models import User

    staff = User.objects.create_superuser("+8613700009999", "ops-password-2026", display_name="Ops Wang")
    client.force_login(staff)
    return client, staff


def befriend(a, b) -> None:
    """Make two users friends through the real circles services: since circles, only friends (or circle
    co-members, or a user's own client manager) may open a direct chat or be added to a group (core.reach)."""
    from django.test import override_settings

    from backend.circles import selectors
    from backend.circles import services as circles

    if selectors.are_friends(a.pk, b.pk):
        return
    # Fixture set-up, not a test of the limit: a 200-member group needs more requests than a person may send.
    with override_settings(QUANZI_CIRCLES={"FRIEND_REQUESTS_PER_HOUR": 10_000}):
        request = circles.send_friend_request(user=a, to_user_id=b.pk, note="hi")
    circles.accept_friend_request(user=b, request_id=request.pk)


def open_direct_between_friends(a, b):
    """A direct conversation between two users who are made friends first."""
    from backend.chat import services as chat

    befriend(a, b)
    return chat.open_direct_conversation(user=a, other_user_id=b.pk)
