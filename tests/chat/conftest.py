"""Chat test helpers: users with sessions, and short-hands for the chat services."""

from __future__ import annotations

import itertools

import pytest

from backend.accounts.ids import user_gid
from backend.accounts.models import User
from backend.accounts.services import DeviceInfo, _start_session
from backend.core.ids import encode_id

_phones = itertools.count(1)


def new_user(name: str = "", **fields) -> User:
    n = next(_phones)
    return User.objects.create_user(f"+86139{n:08d}", display_name=name or f"user{n}", **fields)


def token_for(user: User) -> str:
    return _start_session(user, DeviceInfo()).access_token


def gid(kind: str, pk: int) -> str:
    return user_gid(pk) if kind == "User" else encode_id(kind, pk)


@pytest.fixture
def users(db):
    """Ada, Bob, Cyd and Dan."""
    return [new_user(name) for name in ("Ada", "Bob", "Cyd", "Dan")]


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """Each async test runs its own event loop; channels-redis binds its locks to the loop that first
    contends for them, so every test gets a new layer (a Daphne process has one loop and one layer)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _chat_alone(monkeypatch):
    """Chat's own tests run chat as a chat-only deployment: no social policy in core.reach, so anyone may open
    a chat with anyone. Who may reach whom (friends, circles, blocks) is the circles app's rule, tested in
    tests/circles against these same chat services."""
    from backend.core import reach

    monkeypatch.setattr(reach, "_contact_policies", [])
    monkeypatch.setattr(reach, "_block_lookups", [])
    monkeypatch.setattr(reach, "_send_policies", [])
